"""Planning late-chunking requests for the API, and recognising a server's "too many tokens" answer.

The API embeds all inputs of one late-chunking request as ONE text (joined with a space), so a document is sent as
its chunks in document order. A document that does not fit one request (``budget`` tokens of chunks) is covered by
overlapping requests placed where the local backend puts its macro windows
(:func:`jinav3.late_chunking.windows.plan_windows` over the chunks' tokens, with ``budget`` as the window and the
same overlap), each window's start, end and hand-over rounded to the nearest chunk boundary. Once a server's limit
is known, ``budget`` is its window less its special tokens, so every chunk is embedded at the positions and with the
context the local backend gives it: for a model with absolute positions (BERT-style) that matters more than
context. Where rounded windows cannot hold their chunks (more than ``max_inputs`` chunks, a chunk longer than the
overlap allows), requests are packed greedily instead, sharing about ``overlap`` tokens and handing over at the
middle of them. The vectors of the shared chunks that a request does not keep are discarded.

A window of more chunks than a request may carry (``max_inputs``) is not cut: :func:`split_request` sends it as
several requests that each carry the whole window, the chunks outside their share joined into context-only inputs
(:class:`Part`), so every chunk gets exactly the window's vector. Only a server taking fewer than 3 inputs leaves no
room for that; requests are then planned within its limit.

When a server counts more tokens than planned and refuses a request, the chunks it was to keep are planned again
with a smaller budget (the whole document's plan at that budget, kept to those chunks), until each fits or a
single chunk alone is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jinav3.late_chunking.chunking import Span
from jinav3.late_chunking.windows import plan_windows


@dataclass(frozen=True)
class Request:
    """Chunks ``[start, end)`` are sent; the vectors of ``[keep_start, keep_end)`` are kept, the first and last of
    them scaled by ``first_weight`` and ``last_weight``: a chunk cut by a hand-over is kept by both requests, each
    weighted by its share of the chunk's tokens, as the local backend takes each token from its own window."""

    start: int
    keep_start: int
    keep_end: int
    end: int
    first_weight: float = 1.0
    last_weight: float = 1.0

    def kept(self, vectors: np.ndarray) -> np.ndarray:
        """The kept rows of this request's ``vectors`` (one per chunk sent), weighted."""
        return self.weigh(vectors[self.keep_start - self.start : self.keep_end - self.start])

    def weigh(self, rows: np.ndarray) -> np.ndarray:
        """The rows of the kept chunks, the first and last scaled by their weights."""
        if self.first_weight == 1.0 and self.last_weight == 1.0:
            return rows
        rows = rows.copy()
        rows[0] *= self.first_weight
        rows[-1] *= self.last_weight
        return rows


@dataclass(frozen=True)
class Part:
    """One request for the window of chunks ``[start, end)``: chunks ``[a, b)`` go as inputs of their own, the chunks
    before ``a`` as ONE context-only input and those from ``b`` as another. The server joins inputs with one space,
    so the joined text, its tokens and the character spans of chunks ``[a, b)`` are those of the whole window: their
    vectors are exactly the whole window's, whatever the number of chunks in it (the context inputs' vectors are
    discarded; the first input takes ``<s>`` and the instruction, the last ``</s>``, as in the whole window)."""

    start: int
    a: int
    b: int
    end: int

    def inputs(self, chunks: Sequence[str]) -> list[str]:
        """The texts sent: the context before, chunks ``[a, b)``, the context after."""
        before = [" ".join(chunks[self.start : self.a])] if self.a > self.start else []
        after = [" ".join(chunks[self.b : self.end])] if self.b < self.end else []
        return [*before, *chunks[self.a : self.b], *after]

    def chunk_of(self, row: int) -> int | None:
        """The chunk whose vector is row ``row`` of the answer; None for a context-only input."""
        chunk = self.a + row - (1 if self.a > self.start else 0)
        return chunk if self.a <= chunk < self.b else None

    def rows(self, vectors: np.ndarray) -> np.ndarray:
        """The answer's rows of chunks ``[a, b)``."""
        first = 1 if self.a > self.start else 0
        return vectors[first : first + self.b - self.a]


def split_request(plan: Request, max_inputs: int) -> list[Part]:
    """Parts of at most ``max_inputs`` inputs (3 at least) that together give the vectors of every chunk ``plan``
    keeps exactly as one request of the whole window would: the window itself when its chunks fit one request,
    else the kept chunks in consecutive runs, each sent with the rest of the window as context-only inputs."""
    if plan.end - plan.start <= max_inputs:
        return [Part(plan.start, plan.start, plan.end, plan.end)]
    if max_inputs < 3:
        raise ValueError(f"context-only inputs need at least 3 inputs per request, got {max_inputs}")
    parts: list[Part] = []
    a = plan.keep_start
    while a < plan.keep_end:
        room = max_inputs - (1 if a > plan.start else 0)
        b = plan.end if plan.end - a <= room else min(plan.keep_end, a + room - 1)
        parts.append(Part(plan.start, a, b, plan.end))
        a = b
    return parts


def kept_rows(plan: Request, parts: Sequence[Part], rows: Sequence[np.ndarray]) -> np.ndarray:
    """The weighted vectors of the chunks ``plan`` keeps, from the rows of its ``parts`` (:meth:`Part.rows`)."""
    joined = np.concatenate(rows)
    first = parts[0].a
    return plan.weigh(joined[plan.keep_start - first : plan.keep_end - first])


def assemble(plans: Sequence[Request], parts: Sequence[np.ndarray], lo: int, hi: int) -> np.ndarray:
    """The vectors of chunks ``[lo, hi)`` from the kept rows of ``plans``: a chunk kept by two requests is the sum
    of its two weighted rows."""
    out = np.zeros((hi - lo, parts[0].shape[1]), dtype=np.float32)
    for plan, part in zip(plans, parts, strict=True):
        out[plan.keep_start - lo : plan.keep_end - lo] += part
    return out


_TOO_LONG = re.compile(r"too many tokens|too long|more than|exceed|larger than|maximum|limit", re.IGNORECASE)
_COUNTED = re.compile(r"(at least\s+)?(\d+)\s+tokens", re.IGNORECASE)
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


def _aligned(counts: Sequence[int], budget: int, overlap: int, max_inputs: int) -> list[Request] | None:
    """The local macro windows of ``budget`` tokens sharing ``overlap`` over the chunks' tokens, each start and end
    rounded to the nearest chunk boundary. A chunk the local hand-over cuts is kept by both requests, weighted by
    its tokens on either side, when both carry it and it is not the first the earlier one keeps; else the hand-over
    is rounded too. None where a rounded window cannot hold its kept chunks within the limits."""
    bounds = np.concatenate([[0], np.cumsum(counts)])

    def nearest(token: int) -> int:
        after = int(np.searchsorted(bounds, token))
        return after if after == 0 or bounds[after] - token < token - bounds[after - 1] else after - 1

    windows = plan_windows(int(bounds[-1]), budget, overlap)
    spans: list[tuple[int, int]] = []
    for window in windows:
        start, end = nearest(window.start), nearest(window.end)
        while end - start > max_inputs or (bounds[end] - bounds[start] > budget and end - start > 1):
            if window.start - bounds[start] > bounds[end] - window.end:  # drop the chunk reaching out furthest
                start += 1
            else:
                end -= 1
        if bounds[end] - bounds[start] > budget or start >= end:
            return None
        spans.append((start, end))
    cuts = [w.keep_end for w in windows]
    plans: list[Request] = []
    keep_start, first_weight = 0, 1.0
    for k, ((start, end), cut) in enumerate(zip(spans, cuts, strict=True)):
        chunk = int(np.searchsorted(bounds, cut, side="right")) - 1  # the chunk holding the cut's first token
        cut_inside = chunk < len(counts) and bounds[chunk] < cut
        if cut_inside and k + 1 < len(spans) and keep_start < chunk < end and spans[k + 1][0] <= chunk:
            share = float((cut - bounds[chunk]) / counts[chunk])
            keep_end, last_weight, following = chunk + 1, share, 1.0 - share
        else:
            keep_end, last_weight, following = nearest(cut), 1.0, 1.0
            if keep_end <= keep_start:
                continue  # nothing new to keep here: the neighbours keep it
        if not start <= keep_start < keep_end <= end:
            return None
        plans.append(Request(start, keep_start, keep_end, end, first_weight, last_weight))
        keep_start, first_weight = (keep_end - 1, following) if last_weight != 1.0 else (keep_end, 1.0)
    return plans if keep_start == len(counts) else None


def _packed(counts: Sequence[int], budget: int, overlap: int, max_inputs: int) -> list[Request]:
    """Greedily packed requests sharing about ``overlap`` tokens, handing over at the middle of the shared chunks."""
    windows = _windows(counts, budget, overlap, max_inputs, 0, len(counts))
    cuts = [0, *(_hand_over(counts, windows[k + 1][0], windows[k][1]) for k in range(len(windows) - 1)), len(counts)]
    return [Request(s, cuts[k], cuts[k + 1], e) for k, (s, e) in enumerate(windows) if cuts[k] < cuts[k + 1]]


def plan_requests(counts: Sequence[int], budget: int, overlap: int, max_inputs: int = 2048, lo: int = 0,
                  hi: int | None = None) -> list[Request]:
    """Requests keeping every chunk of ``[lo, hi)`` exactly once, in order (see the module docstring): the whole
    document's plan, kept to ``[lo, hi)`` when a refused request's chunks are planned again, so they keep the
    positions and context the whole plan gives them."""
    hi = len(counts) if hi is None else hi
    if lo >= hi:
        return []
    max_inputs = max(1, max_inputs)
    plans = _aligned(counts, budget, overlap, max_inputs) or _packed(counts, budget, overlap, max_inputs)
    return [Request(p.start, max(p.keep_start, lo), min(p.keep_end, hi), p.end,
                    p.first_weight if p.keep_start >= lo else 1.0, p.last_weight if p.keep_end <= hi else 1.0)
            for p in plans if p.keep_start < hi and p.keep_end > lo]


def length_rejection(status: int | None, code: str | None, detail: str) -> float | None:
    """For an answer refusing a late-chunking request because it is too long: the factor to shrink the request
    by (the server's limit over its count, or 1/2 when the message gives no numbers); None for other answers."""
    if status not in (400, 413, 422):
        return None
    if code != "INPUT_TOO_MANY_TOKENS" and not ("token" in detail.lower() and _TOO_LONG.search(detail)):
        return None
    counted, limit = _COUNTED.search(detail), _LIMIT.search(detail)
    if counted and limit and 0 < int(limit.group(1)) < int(counted.group(2)):
        return int(limit.group(1)) / int(counted.group(2))
    return 0.5


def fitted_budget(detail: str, sent: int, specials: int) -> int | None:
    """For a refusal that states the server's limit, with ``sent`` tokens of chunks counted by the served model's
    own tokenizer: the most tokens of chunks that fit, the limit less what the server adds. That is the stated count
    less ``sent`` when the message gives the exact count, else (a server counting only a prefix says "at least N")
    the ``specials`` the tokenizer adds to a text, if that fits fewer than were sent; None otherwise."""
    counted, limit = _COUNTED.search(detail), _LIMIT.search(detail)
    if not counted or not limit:
        return None
    added = specials if counted.group(1) else int(counted.group(2)) - sent
    fits = int(limit.group(1)) - added
    return fits if 0 < fits < sent else None


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
