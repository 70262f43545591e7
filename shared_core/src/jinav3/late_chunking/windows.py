"""Late chunking mechanics: char spans -> token ranges, macro windows for long documents, span pooling.

A document is tokenised once as ``instruction + document``. Its token sequence is ``head`` (``<s>`` and the
instruction tokens), ``content`` (the document's tokens) and ``tail`` (``</s>``).

The pooling rule (the same for every span set, whatever the order, gaps, overlaps or nesting):

- A chunk pools the tokens it *owns*: those whose last character lies inside its span.
- A chunk that owns no token (a span inside one token, as character splitters produce) pools the tokens that
  overlap its span; a span that overlaps none (only whitespace between two tokens) pools the next token, or the
  last one at the end of the document. Only empty spans are refused.
- With ``include_special_tokens`` the chunk(s) that start first in the document also pool the head, and the
  chunk(s) that end last also pool the tail. A chunk's vector therefore depends only on its own span and on
  whether it is the first/last one — never on the order or the other spans listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jinav3.errors import ChunkAlignmentError, InvalidInputError
from jinav3.late_chunking.chunking import Span

#: The smallest macro window in tokens (the instruction and the special tokens must leave room for text).
MIN_WINDOW = 16


@dataclass(frozen=True)
class TokenizedDocument:
    """One document tokenised with its instruction: ids of head, content and tail, and content char positions."""

    head: np.ndarray  # <s> + instruction tokens
    content: np.ndarray  # document tokens
    tail: np.ndarray  # </s>
    content_first_char: np.ndarray  # for each content token, its first character (running maximum)
    content_last_char: np.ndarray  # for each content token, its last character index (running maximum)

    @property
    def length(self) -> int:
        return len(self.head) + len(self.content) + len(self.tail)

    def ids(self) -> np.ndarray:
        """The whole model input: head + content + tail."""
        return np.concatenate([self.head, self.content, self.tail])


def split_encoding(
    ids: Sequence[int], offsets: Sequence[tuple[int, int]], special: Sequence[int], prefix_chars: int
) -> TokenizedDocument:
    """Split one ``instruction + document`` encoding into head/content/tail by character offsets.

    Ids and character positions are kept as int32 (12 bytes a token: a 20 MB text's millions of tokens stay small)
    wherever they fit, which is any text under 2**31 characters and any vocabulary under 2**31 entries."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    special_arr = np.asarray(special, dtype=bool)
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(offs) and offs.max() < 2**31 and ids_arr.max() < 2**31:
        ids_arr, offs = ids_arr.astype(np.int32), offs.astype(np.int32)
    last_char = np.maximum(offs[:, 1] - 1, offs[:, 0])
    is_content = ~special_arr & (last_char >= prefix_chars)
    content_idx = np.flatnonzero(is_content)
    if len(content_idx) == 0:
        raise InvalidInputError("the document produced no tokens")
    first, last = int(content_idx[0]), int(content_idx[-1])
    if not is_content[first : last + 1].all():
        raise ChunkAlignmentError("the tokenizer placed special tokens inside the document; cannot late-chunk it")
    window = slice(first, last + 1)
    return TokenizedDocument(
        head=ids_arr[:first],
        content=ids_arr[window],
        tail=ids_arr[last + 1 :],
        content_first_char=np.maximum.accumulate(np.maximum(offs[window, 0] - prefix_chars, 0)),
        content_last_char=np.maximum.accumulate(last_char[window] - prefix_chars),
    )


@dataclass(frozen=True)
class PoolingPlan:
    """Which tokens each chunk averages: a ``[lo, hi)`` range of the full sequence, plus head and/or tail."""

    ranges: np.ndarray  # (n, 2) int64 positions in head + content + tail
    with_head: np.ndarray  # (n,) bool
    with_tail: np.ndarray  # (n,) bool


def content_ranges(doc: TokenizedDocument, spans: Sequence[Span]) -> np.ndarray:
    """``[lo, hi)`` content-token range of every span under the module's rule (never empty)."""
    last, first = doc.content_last_char, doc.content_first_char
    n = len(last)
    starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    ends = np.asarray([e for _, e in spans], dtype=np.int64)
    if len(starts) and (starts >= ends).any():
        i = int(np.flatnonzero(starts >= ends)[0])
        raise ChunkAlignmentError(f"chunk {i} (characters {spans[i][0]}..{spans[i][1]}) is empty")
    lo = np.searchsorted(last, starts, side="left")  # first token ending at or after the span's start
    hi = np.searchsorted(last, ends, side="left")  # owned: tokens whose last char lies in [start, end)
    overlapping_hi = np.searchsorted(first, ends, side="left")  # tokens starting before the span's end
    unowned = hi <= lo
    hi = np.where(unowned, np.maximum(lo, overlapping_hi), hi)
    gap = hi <= lo  # only whitespace between two tokens: take the next token, or the last one at the end
    at_end = gap & (lo >= n)
    lo = np.where(at_end, n - 1, lo)
    hi = np.where(gap, lo + 1, hi)
    # tokens sharing one character (byte-fallback pieces of one emoji) are never split between chunks
    lo = np.searchsorted(last, last[lo], side="left")
    hi = np.searchsorted(last, last[hi - 1], side="right")
    return np.stack([lo, hi], axis=1)


def plan_pooling(doc: TokenizedDocument, spans: Sequence[Span], include_special_tokens: bool = True) -> PoolingPlan:
    """The pooling plan of ``spans`` over ``doc`` (see the module docstring for the rule)."""
    if not len(spans):
        raise InvalidInputError("no chunk spans were given")
    ranges = content_ranges(doc, spans) + len(doc.head)
    starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    ends = np.asarray([e for _, e in spans], dtype=np.int64)
    if include_special_tokens:
        with_head, with_tail = starts == starts.min(), ends == ends.max()
    else:
        with_head = with_tail = np.zeros(len(spans), dtype=bool)
    return PoolingPlan(ranges, with_head, with_tail)


def pool(token_vectors: np.ndarray, doc: TokenizedDocument, plan: PoolingPlan) -> np.ndarray:
    """Mean of every chunk's tokens, vectorised with one prefix sum (float64 accumulation)."""
    prefix = np.zeros((token_vectors.shape[0] + 1, token_vectors.shape[1]), dtype=np.float64)
    np.cumsum(token_vectors, axis=0, dtype=np.float64, out=prefix[1:])
    lo, hi = plan.ranges[:, 0], plan.ranges[:, 1]
    n_head, tail_start = len(doc.head), len(doc.head) + len(doc.content)
    head_sum, tail_sum = prefix[n_head], prefix[-1] - prefix[tail_start]
    sums = prefix[hi] - prefix[lo] + plan.with_head[:, None] * head_sum + plan.with_tail[:, None] * tail_sum
    counts = (hi - lo) + plan.with_head * n_head + plan.with_tail * len(doc.tail)
    return (sums / counts[:, None]).astype(np.float32)


class PoolingStream:
    """:func:`pool` fed a block of token vectors at a time, in document order, so a document of any length is pooled
    holding one block plus the prefix-sum rows of the chunks still open — not every token vector.

    The float64 running sum is carried from block to block, so every prefix row, and hence every chunk vector, is
    bit-identical to :func:`pool` over the whole document at once. The array arithmetic sits in three small methods
    so :mod:`jinav3.late_chunking.pooling_torch` can run the same bookkeeping on the model's device.
    """

    def __init__(self, doc: TokenizedDocument, plan: PoolingPlan, width: int) -> None:
        self.lo, self.hi = plan.ranges[:, 0], plan.ranges[:, 1]
        self.with_head, self.with_tail = plan.with_head, plan.with_tail
        self.n_head, self.tail_start, self.total = len(doc.head), len(doc.head) + len(doc.content), doc.length
        self.counts = (self.hi - self.lo) + plan.with_head * self.n_head + plan.with_tail * len(doc.tail)
        self.width = width
        self.by_lo, self.by_hi = np.argsort(self.lo, kind="stable"), np.argsort(self.hi, kind="stable")
        self.next_lo = self.next_hi = 0  # how many chunks (in lo / hi order) have had their start / end row seen
        self.open_chunks = np.zeros(0, dtype=np.int64)  # chunks whose first row has been seen, not their last
        self.open_pos = np.zeros(0, dtype=np.int64)  # positions of the prefix rows kept for them
        self.open_rows: Any = self.empty_rows()
        self.running: Any = None  # prefix row at ``seen`` (None before the first block)
        self.head_sum: Any = None
        self.tail_first: Any = None  # prefix row at the tail's start
        self.waiting: dict[int, Any] = {}  # chunk -> its range sum plus head, waiting for the tail's sum
        self.seen = 0
        self.out = np.empty((len(self.lo), width), dtype=np.float32)

    # -- array arithmetic (numpy here; torch in jinav3.late_chunking.pooling_torch) ------------------------------
    def empty_rows(self) -> Any:
        return np.zeros((0, self.width), dtype=np.float64)

    def prefix(self, block: Any) -> Any:
        """Prefix sums at positions ``seen .. seen + len(block)``, continuing the running sum exactly."""
        rows = np.empty((len(block) + 1, self.width), dtype=np.float64)
        if self.running is None:
            rows[0] = 0.0
            np.cumsum(block, axis=0, dtype=np.float64, out=rows[1:])
        else:
            rows[0] = self.running
            rows[1:] = block
            np.cumsum(rows, axis=0, out=rows)
        return rows

    def concat(self, parts: list[Any]) -> Any:
        return np.concatenate(parts)

    def column(self, values: np.ndarray) -> Any:
        """Per-chunk numbers (flags, counts) as a column that broadcasts over vector rows."""
        return values[:, None]

    def to_host(self, chunk_vectors: Any) -> np.ndarray:
        return chunk_vectors

    # -- bookkeeping --------------------------------------------------------------------------------------
    def feed(self, block: Any) -> None:
        """Take the token vectors of positions ``seen .. seen + len(block)`` (head, content and tail alike)."""
        if not len(block):
            return
        rows = self.prefix(block)
        first, last = self.seen, self.seen + len(block)
        self.running = rows[-1]
        if self.head_sum is None and first <= self.n_head <= last:
            self.head_sum = rows[self.n_head - first]
        if self.tail_first is None and first <= self.tail_start <= last:
            self.tail_first = rows[self.tail_start - first]
        starting = self.by_lo[self.next_lo : np.searchsorted(self.lo, last, side="right", sorter=self.by_lo)]
        self.next_lo += len(starting)
        new_pos = np.unique(self.lo[starting])
        self.open_pos = np.concatenate([self.open_pos, new_pos])
        self.open_rows = self.concat([self.open_rows, rows[new_pos - first]])
        ending = self.by_hi[self.next_hi : np.searchsorted(self.hi, last, side="right", sorter=self.by_hi)]
        self.next_hi += len(ending)
        if len(ending):
            self._close(ending, rows[self.hi[ending] - first] - self.open_rows[np.searchsorted(self.open_pos,
                                                                                                 self.lo[ending])])
        self.open_chunks = np.setdiff1d(np.concatenate([self.open_chunks, starting]), ending, assume_unique=True)
        keep = np.isin(self.open_pos, self.lo[self.open_chunks])
        self.open_pos, self.open_rows = self.open_pos[keep], self.open_rows[keep]
        self.seen = last

    def _close(self, chunks: np.ndarray, range_sums: Any) -> None:
        """Finish chunks whose last token has been seen; those that also pool the tail wait for it."""
        sums = range_sums + self.column(self.with_head[chunks]) * self.head_sum
        tail = self.with_tail[chunks]
        done = np.flatnonzero(~tail)
        self.out[chunks[done]] = self.to_host(sums[done] / self.column(self.counts[chunks[done]]))
        for k in np.flatnonzero(tail):
            self.waiting[int(chunks[k])] = sums[k]

    def result(self) -> np.ndarray:
        """The chunk vectors, once every position of the document has been fed."""
        if self.seen != self.total:
            raise RuntimeError(f"pooling stream fed {self.seen} of {self.total} token vectors")
        if self.waiting:
            tail_sum = self.running - self.tail_first
            chunks = np.fromiter(self.waiting, dtype=np.int64)
            sums = self.concat([self.waiting[int(c)][None] for c in chunks]) + tail_sum
            self.out[chunks] = self.to_host(sums / self.column(self.counts[chunks]))
            self.waiting = {}
        return self.out


@dataclass(frozen=True)
class Window:
    """A macro window over content tokens ``[start, end)`` that supplies vectors for ``[keep_start, keep_end)``."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def plan_windows(n_content: int, size: int, overlap: int) -> list[Window]:
    """Cover ``n_content`` tokens with windows of ``size`` tokens overlapping by ``overlap``.

    Each token takes its vector from the window where it sits farthest from a cut: neighbouring windows hand
    over at the middle of their overlap, so every token keeps at least ``overlap // 2`` tokens of context on
    both sides where the document has them.
    """
    if size < 1:
        raise InvalidInputError(f"window size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise InvalidInputError(f"window overlap must be in [0, {size}) tokens, got {overlap}")
    if n_content <= size:
        return [Window(0, n_content, 0, n_content)]
    stride = size - overlap
    starts = [*range(0, n_content - size, stride), n_content - size]
    bounds = [(s, min(s + size, n_content)) for s in starts]
    cuts = [0] + [(bounds[k + 1][0] + bounds[k][1]) // 2 for k in range(len(bounds) - 1)] + [n_content]
    return [Window(s, e, cuts[k], cuts[k + 1]) for k, (s, e) in enumerate(bounds)]


def window_sequences(doc: TokenizedDocument, windows: Sequence[Window]) -> list[np.ndarray]:
    """Model inputs for each window: the document's head, the window's content, the tail."""
    return [np.concatenate([doc.head, doc.content[w.start : w.end], doc.tail]) for w in windows]


def kept_rows(doc: TokenizedDocument, windows: Sequence[Window], k: int, n_rows: int) -> list[slice]:
    """The rows of window ``k``'s ``n_rows`` outputs that the document takes, in document order: the head from the
    first window, the tail from the last, each content token from its owning window."""
    h, window = len(doc.head), windows[k]
    a = h + window.keep_start - window.start
    rows = [slice(0, h)] if k == 0 else []
    rows.append(slice(a, a + window.keep_end - window.keep_start))
    if k == len(windows) - 1:
        rows.append(slice(n_rows - len(doc.tail), n_rows))
    return rows


def stitch(doc: TokenizedDocument, windows: Sequence[Window], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Assemble token vectors of the whole document from the windows' outputs (see :func:`kept_rows`)."""
    return np.concatenate(
        [out[rows] for k, out in enumerate(outputs) for rows in kept_rows(doc, windows, k, len(out))], axis=0
    )
