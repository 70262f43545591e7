"""Task LoRA for jina-embeddings-v3, applied per row without touching the base weights.

The published checkpoint stores, for every adapted weight, a bank of rank-4 factors (one per task). When every
row of a batch has the same task, Linear layers run with that task's LoRA merged into the weight (merged once per
task switch from a kept copy of the base weight, so nothing drifts and a batch costs exactly a plain forward). Rows
of one batch may also use different tasks (the reference ``adapter_mask`` semantics): then the base weight runs and
``s * B_t (A_t x)`` is added per row. Embedding tables are never copied: their low-rank term is added on lookup.
A row with task -1 uses base weights.
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
    """``nn.Linear`` plus a bank of task adapters: ``lora_a`` (T, r, in), ``lora_b`` (T, out, r).

    With ``merge=True`` a copy of the base weight is kept and ``base.weight`` holds the weight of the task in use.
    """

    def __init__(
        self,
        base: nn.Linear,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        scale: float,
        sel: TaskSelection,
        merge: bool = True,
    ) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("lora_a", lora_a, persistent=False)
        self.register_buffer("lora_b", lora_b, persistent=False)
        self.register_buffer("original", base.weight.detach().clone() if merge else None, persistent=False)
        self.merged_task = -1
        self.scale = scale
        self.selection = sel

    @torch.no_grad()
    def _use(self, task: int) -> None:
        """Make ``base.weight`` the weight of ``task`` (-1 = base), computing the delta in fp32."""
        if task == self.merged_task:
            return
        if task < 0:
            self.base.weight.copy_(self.original)
        else:
            delta = (self.lora_b[task].float() @ self.lora_a[task].float()) * self.scale
            self.base.weight.copy_((self.original.float() + delta).to(self.original.dtype))
        self.merged_task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sel = self.selection
        if self.original is not None:
            self._use(-1 if sel.uniform is None else sel.uniform)
            if sel.uniform is not None:
                return self.base(x)
        y = self.base(x)
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
