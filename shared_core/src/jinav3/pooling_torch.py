"""Span pooling on the model's device: late chunking copies only one vector per chunk to the host, never every
token vector (an 8,192-token document is 32 MB of fp32 token vectors, its 30 chunks 120 kB).

Same arithmetic as :func:`jinav3.late.pool` (float64 prefix sums, a ``[lo, hi)`` range plus head/tail); the window
stitching is :func:`jinav3.late.stitch` itself, applied to token *row numbers* instead of vectors, so which token
vector a document position takes is decided in exactly one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from jinav3 import late
from jinav3.preparation import PreparedDocument


def pool_plan(token_vectors: torch.Tensor, n_head: int, n_tail: int, ranges: torch.Tensor | np.ndarray,
              with_head: torch.Tensor | np.ndarray, with_tail: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean of every chunk's ``[lo, hi)`` tokens plus, where flagged, the document's head (first ``n_head`` rows)
    and/or tail (last ``n_tail`` rows): the torch twin of a late-chunking pooling plan (issue 12's rule)."""
    dev = token_vectors.device
    ranges = torch.as_tensor(ranges, dtype=torch.int64, device=dev)
    head = torch.as_tensor(with_head, dtype=torch.float64, device=dev)
    tail = torch.as_tensor(with_tail, dtype=torch.float64, device=dev)
    prefix = torch.zeros((token_vectors.shape[0] + 1, token_vectors.shape[1]), dtype=torch.float64, device=dev)
    torch.cumsum(token_vectors.to(torch.float64), dim=0, out=prefix[1:])
    lo, hi = ranges[:, 0], ranges[:, 1]
    head_sum, tail_sum = prefix[n_head], prefix[-1] - prefix[token_vectors.shape[0] - n_tail]
    sums = prefix[hi] - prefix[lo] + head[:, None] * head_sum + tail[:, None] * tail_sum
    counts = (hi - lo).to(torch.float64) + head * n_head + tail * n_tail
    return (sums / counts[:, None]).to(torch.float32)


def document_rows(doc: late.TokenizedDocument, plan: Sequence[late.Window], first_row: int) -> np.ndarray:
    """For every token of ``doc``, the row of its vector among the windows' outputs laid end to end (window k's
    outputs start at ``first_row`` plus the lengths of windows 0..k-1)."""
    sizes = [len(doc.head) + (w.end - w.start) + len(doc.tail) for w in plan]
    starts = first_row + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return late.stitch(doc, plan, [np.arange(s, s + n) for s, n in zip(starts, sizes, strict=True)])


def pool_documents(
    outputs: torch.Tensor, documents: Sequence[PreparedDocument], plans: Sequence[Sequence[late.Window]]
) -> list[np.ndarray]:
    """Chunk vectors of every document from ``outputs`` (all windows' token vectors, end to end, on the device)."""
    pooled: list[np.ndarray] = []
    row = 0
    for item, plan in zip(documents, plans, strict=True):
        doc, pooling = item.tokens, item.pooling
        rows = torch.from_numpy(document_rows(doc, plan, row)).to(outputs.device)
        row += sum(len(doc.head) + (w.end - w.start) + len(doc.tail) for w in plan)
        vectors = pool_plan(outputs.index_select(0, rows), len(doc.head), len(doc.tail), pooling.ranges,
                            pooling.with_head, pooling.with_tail)
        pooled.append(vectors.cpu().numpy())
    return pooled


def concat_tokens(
    batches: Iterable[tuple[list[int], torch.Tensor, torch.Tensor]], lengths: Sequence[int]
) -> torch.Tensor:
    """Token vectors of every sequence, in sequence order, end to end, from ``(indices, hidden, mask)`` batches
    (what the local backend's batching yields), without leaving the device."""
    parts: list[torch.Tensor | None] = [None] * len(lengths)
    for batch, hidden, _ in batches:
        for row, i in enumerate(batch):
            parts[i] = hidden[row, : lengths[i]]
    return torch.cat(parts, dim=0)  # type: ignore[arg-type]
