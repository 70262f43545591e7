"""Span pooling on the model's device: late chunking copies only one vector per chunk to the host, never every
token vector (an 8,192-token document is 32 MB of fp32 token vectors, its 30 chunks 120 kB).

Same arithmetic as :func:`jinav3.late_chunking.windows.pool` (float64 prefix sums, a ``[lo, hi)`` range plus head/tail),
and the same streaming bookkeeping as :class:`jinav3.late_chunking.windows.PoolingStream`, of which
:class:`TorchPoolingStream` only swaps the array operations.
"""

from __future__ import annotations

import numpy as np
import torch

from jinav3.late_chunking import windows as late


class TorchPoolingStream(late.PoolingStream):
    """:class:`jinav3.late_chunking.windows.PoolingStream` on the model's device: token vectors never leave it, only
    chunk vectors."""

    def __init__(self, doc: late.TokenizedDocument, plan: late.PoolingPlan, width: int, device: torch.device) -> None:
        self.device = device
        super().__init__(doc, plan, width)

    def empty_rows(self) -> torch.Tensor:
        return torch.zeros((0, self.width), dtype=torch.float64, device=self.device)

    def prefix(self, block: torch.Tensor) -> torch.Tensor:
        rows = torch.empty((len(block) + 1, self.width), dtype=torch.float64, device=self.device)
        rows[0] = 0.0 if self.running is None else self.running
        rows[1:] = block
        return torch.cumsum(rows, dim=0)

    def concat(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts)

    def column(self, values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float64, device=self.device)[:, None]

    def to_host(self, chunk_vectors: torch.Tensor) -> np.ndarray:
        return chunk_vectors.to(torch.float32).cpu().numpy()
