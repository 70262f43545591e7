"""Planning late-chunking requests for the API, and recognising a server's "too many tokens" answer.

The API embeds all inputs of one late-chunking request as ONE text, so a document is sent as consecutive chunks,
several requests for a long one, each led by preceding chunks as context (their vectors are discarded). When a
server counts more tokens than planned and refuses a request, the rejected request's new chunks are planned
again with a smaller budget (context kept by the same rule), until each fits or a single chunk alone is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A late-chunking request is a chunk range: chunks [start, end) are sent, vectors of [first, end) are kept.
Plan = tuple[int, int, int]

_TOO_LONG = re.compile(r"too many tokens|too long|more than|exceed|larger than|maximum|limit", re.IGNORECASE)
_COUNTED = re.compile(r"(\d+)\s+tokens", re.IGNORECASE)
_LIMIT = re.compile(r"(?:limit of|model's(?: limit of)?|max_length=|maximum(?: of)?|more than|exceeds?)\s*(\d+)",
                    re.IGNORECASE)


def plan_requests(counts: Sequence[int], budget: int, context: int, lo: int = 0, hi: int | None = None) -> list[Plan]:
    """Requests whose kept chunks cover ``[lo, hi)`` in order, each within ``budget`` tokens (a chunk larger than
    the budget goes alone) and led by up to ``context`` tokens of the chunks before it (which may lie before
    ``lo``)."""
    plans: list[Plan] = []
    first, hi = lo, len(counts) if hi is None else hi
    while first < hi:
        room = min(context, max(0, budget - counts[first]))
        start, used = first, 0
        while start > 0 and used + counts[start - 1] <= room:
            start -= 1
            used += counts[start]
        end, total = first, used
        while end < hi and (end == first or total + counts[end] <= budget):
            total += counts[end]
            end += 1
        plans.append((start, first, end))
        first = end
    return plans


def length_rejection(status: int | None, code: str | None, detail: str) -> float | None:
    """For an answer refusing a late-chunking request because it is too long: the factor to shrink the request
    by (the server's limit over its count, or 1/2 when the message gives no numbers); None for other answers."""
    if status not in (400, 413, 422):
        return None
    if code != "INPUT_TOO_MANY_TOKENS" and not ("token" in detail.lower() and _TOO_LONG.search(detail)):
        return None
    counted, limit = _COUNTED.search(detail), _LIMIT.search(detail)
    if counted and limit and 0 < int(limit.group(1)) < int(counted.group(1)):
        return int(limit.group(1)) / int(counted.group(1))
    return 0.5


def shrunk(budget: int, context: int, sent: int, factor: float) -> tuple[int, int]:
    """A smaller ``(budget, context)`` after a request of ``sent`` tokens was refused: 90 % of what the server
    would accept, strictly below what was sent; context shrinks in proportion (the same rule, scaled)."""
    smaller = max(1, min(int(sent * factor * 0.9), sent - 1))
    return smaller, min(context * smaller // max(budget, 1), smaller // 4 if context else 0)
