"""Planning late-chunking requests for the API, and recognising a server's "too many tokens" answer.

The API embeds all inputs of one late-chunking request as ONE text (joined with a space), so a document is sent as
its chunks in document order. A document that does not fit one request (``budget`` tokens, ``max_inputs`` inputs)
is covered by overlapping requests, the local macro-window rule in chunks
(:func:`jinav3.late_chunking.windows.plan_windows`): neighbouring requests share about ``overlap`` tokens of chunks, and
hand over at the middle of that overlap, so a chunk's vector comes from the request where it sits farthest from a cut
and every chunk keeps about ``overlap / 2`` tokens of context on both sides where the document has them. The vectors of
the shared chunks that a request does not keep are discarded.

When a server counts more tokens than planned and refuses a request, the chunks it was to keep are planned again
with a smaller budget (same rule, context taken from the neighbours), until each fits or a single chunk alone is
refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jinav3.late_chunking.chunking import Span


@dataclass(frozen=True)
class Request:
    """Chunks ``[start, end)`` are sent; the vectors of ``[keep_start, keep_end)`` are kept."""

    start: int
    keep_start: int
    keep_end: int
    end: int


_TOO_LONG = re.compile(r"too many tokens|too long|more than|exceed|larger than|maximum|limit", re.IGNORECASE)
_COUNTED = re.compile(r"(\d+)\s+tokens", re.IGNORECASE)
_LIMIT = re.compile(r"(?:limit of|model's(?: limit of)?|max_length=|maximum(?: of)?|more than|exceeds?)\s*(\d+)",
                    re.IGNORECASE)
_TOO_MANY_ITEMS = re.compile(r'"?input"? length \d+ is larger than|too many (?:inputs|items)', re.IGNORECASE)
_ALLOWED_SIZE = re.compile(r"largest allowed size\s*(\d+)", re.IGNORECASE)


def document_order(spans: Sequence[Span]) -> tuple[list[Span], list[int]]:
    """The distinct spans in document order, and for each listed span its position there: chunks are always
    sent in document order, so a vector never depends on the order the spans were listed in."""
    ordered = sorted(set(spans))
    where = {span: i for i, span in enumerate(ordered)}
    return ordered, [where[span] for span in spans]


def sent_texts(text: str, spans: Sequence[Span]) -> list[str]:
    """The input texts for ``spans`` (in document order) whose space-joined text is closest to the document. The
    API joins inputs with one space, so a whitespace separator holding a space is reproduced exactly: its first
    space becomes the join, what precedes it ends the previous chunk's text and what follows starts the next
    one's. A whitespace separator without a space (a newline, nothing between CJK sentences) starts the next
    chunk's text, one space after the join's. Gaps holding text, and overlapping spans, are not sent."""
    texts: list[str] = []
    previous = None
    for start, end in spans:
        gap = text[previous:start] if previous is not None and previous < start else ""
        chunk = text[start:end]
        if gap.isspace():
            before, space, after = gap.partition(" ")
            texts[-1] += before if space else ""
            chunk = (after if space else gap) + chunk
        texts.append(chunk)
        previous = end if previous is None else max(previous, end)
    return texts


def _windows(counts: Sequence[int], budget: int, overlap: int, max_inputs: int, a: int, b: int) -> list[Span]:
    """Chunk windows ``[s, e)`` covering ``[a, b)``: each as long as the limits allow (a chunk over the budget
    goes alone), each next one led by the previous one's last chunks, about ``overlap`` tokens (at least two
    chunks where the limits allow, so the hand-over can fall between them); never three windows on a chunk."""
    out: list[Span] = []
    s, previous_end = a, a
    while True:
        e, total = s, 0
        while e < b and (e == s or (total + counts[e] <= budget and e - s < max_inputs)):
            total += counts[e]
            e += 1
        out.append((s, e))
        if e >= b:
            return out
        nxt, used = e, 0
        floor = max(s + 1, previous_end)
        while nxt - 1 >= floor:
            more = used + counts[nxt - 1]
            enough = overlap <= 0 or (more > overlap and e - nxt >= 2)
            if enough or more + counts[e] > budget or e - nxt + 2 > max_inputs:
                break
            nxt, used = nxt - 1, more
        s, previous_end = nxt, e


def _hand_over(counts: Sequence[int], lo: int, hi: int) -> int:
    """The cut in the shared chunks ``[lo, hi)``: the chunk boundary nearest the middle of their tokens,
    strictly inside when there are two chunks or more."""
    if hi - lo < 2:
        return hi
    total = sum(counts[lo:hi])
    best, best_gap, left = lo + 1, None, 0
    for cut in range(lo + 1, hi):
        left += counts[cut - 1]
        gap = abs(2 * left - total)
        if best_gap is None or gap < best_gap:
            best, best_gap = cut, gap
    return best


def plan_requests(counts: Sequence[int], budget: int, overlap: int, max_inputs: int = 2048, lo: int = 0,
                  hi: int | None = None) -> list[Request]:
    """Requests keeping every chunk of ``[lo, hi)`` exactly once, in order (see the module docstring). With
    ``lo > 0`` or ``hi < len(counts)`` (a refused request planned again) the outer requests also take about
    ``overlap / 2`` tokens of the chunks outside, so the kept chunks keep their context on both sides."""
    n = len(counts)
    hi = n if hi is None else hi
    if lo >= hi:
        return []
    a, b = lo, hi
    half = overlap // 2
    used = 0
    while a > 0 and used + counts[a - 1] <= half:
        a, used = a - 1, used + counts[a - 1]
    used = 0
    while b < n and used + counts[b] <= half:
        used, b = used + counts[b], b + 1
    windows = _windows(counts, budget, overlap, max(1, max_inputs), a, b)
    cuts = [a, *(_hand_over(counts, windows[k + 1][0], windows[k][1]) for k in range(len(windows) - 1)), b]
    plans = []
    for k, (s, e) in enumerate(windows):
        keep_start, keep_end = max(cuts[k], lo), min(cuts[k + 1], hi)
        if keep_start < keep_end:
            plans.append(Request(s, keep_start, keep_end, e))
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


def count_rejection(status: int | None, code: str | None, detail: str, sent: int) -> int | None:
    """For an answer refusing a request because it holds too many inputs: how many inputs the server takes (its
    stated limit, or half of ``sent`` when the message gives none); None for other answers. The Jina API answers
    400 ``"input" length N is larger than the largest allowed size M``; ``jinav3 serve`` adds the code
    ``INPUT_TOO_MANY_ITEMS``."""
    if status not in (400, 413, 422):
        return None
    if code != "INPUT_TOO_MANY_ITEMS" and not _TOO_MANY_ITEMS.search(detail):
        return None
    stated = _ALLOWED_SIZE.search(detail)
    limit = int(stated.group(1)) if stated else sent // 2
    return max(1, min(limit, sent - 1))


def shrunk(budget: int, overlap: int, sent: int, factor: float) -> tuple[int, int]:
    """A smaller ``(budget, overlap)`` after a request of ``sent`` tokens was refused: 90 % of what the server
    would accept, strictly below what was sent; the overlap kept, up to a quarter of the new budget (the local
    default's cap), so a server with a short context still gets requests that share context."""
    smaller = max(1, min(int(sent * factor * 0.9), sent - 1))
    return smaller, min(overlap, smaller // 4)
