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

import numpy as np

from jinav3.chunking import Span
from jinav3.errors import ChunkAlignmentError, InvalidInputError


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
    """Split one ``instruction + document`` encoding into head/content/tail by character offsets."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    special_arr = np.asarray(special, dtype=bool)
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
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


def stitch(doc: TokenizedDocument, windows: Sequence[Window], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Assemble token vectors of the whole document from the windows' outputs (head from the first window,
    tail from the last, each content token from its owning window)."""
    h = len(doc.head)
    parts = [outputs[0][:h]]
    for window, out in zip(windows, outputs, strict=True):
        a = h + window.keep_start - window.start
        parts.append(out[a : a + window.keep_end - window.keep_start])
    parts.append(outputs[-1][len(outputs[-1]) - len(doc.tail) :])
    return np.concatenate(parts, axis=0)
