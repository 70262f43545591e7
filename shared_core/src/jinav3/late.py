"""Late chunking mechanics: char spans -> token ranges, macro windows for long documents, span pooling.

A document is tokenised once as ``instruction + document``. Its token sequence is ``head`` (``<s>`` and the
instruction tokens), ``content`` (the document's tokens) and ``tail`` (``</s>``). A token belongs to a chunk when
its last character lies inside the chunk's span, which maps spans offset-exactly and tolerates overlapping chunks
and gaps between them. Pooling follows the reference: the first chunk also takes the head, the last the tail.
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
    content_last_char: np.ndarray  # for each content token, its last character index in the document

    @property
    def length(self) -> int:
        return len(self.head) + len(self.content) + len(self.tail)


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
    content_last = np.maximum.accumulate(last_char[first : last + 1] - prefix_chars)
    return TokenizedDocument(
        head=ids_arr[:first],
        content=ids_arr[first : last + 1],
        tail=ids_arr[last + 1 :],
        content_last_char=content_last,
    )


def token_ranges(doc: TokenizedDocument, spans: Sequence[Span], include_special_tokens: bool = True) -> np.ndarray:
    """Map character spans to ``[lo, hi)`` positions in the full token sequence (head + content + tail)."""
    starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    ends = np.asarray([e for _, e in spans], dtype=np.int64)
    lo = np.searchsorted(doc.content_last_char, starts, side="left") + len(doc.head)
    hi = np.searchsorted(doc.content_last_char, ends, side="left") + len(doc.head)
    empty = np.flatnonzero(hi <= lo)
    if len(empty):
        i = int(empty[0])
        raise ChunkAlignmentError(
            f"chunk {i} (characters {spans[i][0]}..{spans[i][1]}) covers no token of the document; "
            "merge it with a neighbour or drop it"
        )
    ranges = np.stack([lo, hi], axis=1)
    if include_special_tokens:
        ranges[0, 0] = 0
        ranges[-1, 1] = doc.length
    return ranges


def pool_ranges(token_vectors: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Mean of ``token_vectors[lo:hi]`` for every range, vectorised with a prefix sum (float64 accumulation)."""
    prefix = np.zeros((token_vectors.shape[0] + 1, token_vectors.shape[1]), dtype=np.float64)
    np.cumsum(token_vectors, axis=0, dtype=np.float64, out=prefix[1:])
    sums = prefix[ranges[:, 1]] - prefix[ranges[:, 0]]
    return (sums / (ranges[:, 1] - ranges[:, 0])[:, None]).astype(np.float32)


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
    if n_content <= size:
        return [Window(0, n_content, 0, n_content)]
    if not 0 <= overlap < size:
        raise InvalidInputError(f"window overlap must be in [0, {size}), got {overlap}")
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
