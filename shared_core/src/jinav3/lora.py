"""Task LoRA for jina-embeddings-v3, applied per row without touching the base weights.

The published checkpoint stores, for every adapted weight, a bank of rank-4 factors (one per task). Computing
``W x + s * B_t (A_t x)`` costs under 1% of the layer's FLOPs, needs no merged copy of any weight, and lets rows
of one batch use different tasks (the reference ``adapter_mask`` semantics). A row with task -1 uses base weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TaskSelection:
    """The task id of every row of the batch being run, shared by all LoRA modules of one model."""

    def __init__(self) -> None:
        self.row_tasks: torch.Tensor | None = None  # (batch,) long, -1 = no adapter
        self.uniform: int | None = None  # set when every row has the same task

    def set(self, row_tasks: torch.Tensor) -> None:
        self.row_tasks = row_tasks
        first = int(row_tasks[0])
        self.uniform = first if bool((row_tasks == first).all()) else None


class LoRALinear(nn.Module):
    """``nn.Linear`` plus a bank of task adapters: ``lora_a`` (T, r, in), ``lora_b`` (T, out, r)."""

    def __init__(
        self, base: nn.Linear, lora_a: torch.Tensor, lora_b: torch.Tensor, scale: float, sel: TaskSelection
    ) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("lora_a", lora_a, persistent=False)
        self.register_buffer("lora_b", lora_b, persistent=False)
        self.scale = scale
        self.selection = sel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        sel = self.selection
        if sel.uniform is not None:
            if sel.uniform < 0:
                return y
            t = sel.uniform
            return y + F.linear(F.linear(x, self.lora_a[t]), self.lora_b[t]) * self.scale
        tasks = sel.row_tasks
        keep = (tasks >= 0).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        idx = tasks.clamp(min=0)
        low = torch.matmul(x, self.lora_a[idx].transpose(1, 2))  # (B, L, r)
        return y + torch.matmul(low, self.lora_b[idx].transpose(1, 2)) * (self.scale * keep)


class LoRAEmbedding(nn.Module):
    """``nn.Embedding`` plus task adapters: ``E_t[ids] = E[ids] + s * A_t[ids] @ B_t`` (A: (T, V, r), B: (T, r, d))."""

    def __init__(
        self, base: nn.Embedding, lora_a: torch.Tensor, lora_b: torch.Tensor, scale: float, sel: TaskSelection
    ) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("lora_a", lora_a, persistent=False)
        self.register_buffer("lora_b", lora_b, persistent=False)
        self.scale = scale
        self.selection = sel

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        y = self.base(ids)
        sel = self.selection
        if sel.uniform is not None:
            if sel.uniform < 0:
                return y
            t = sel.uniform
            return y + torch.matmul(F.embedding(ids, self.lora_a[t]), self.lora_b[t]) * self.scale
        tasks = sel.row_tasks
        idx = tasks.clamp(min=0)
        keep = (tasks >= 0).to(y.dtype).view(-1, 1, 1)
        rows = idx.view(-1, 1).expand_as(ids)
        low = self.lora_a[rows, ids]  # (B, L, r)
        return y + torch.matmul(low, self.lora_b[idx]) * (self.scale * keep)
