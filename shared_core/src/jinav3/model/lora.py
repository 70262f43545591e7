"""Task LoRA for jina-embeddings-v3: one task per forward pass, base weights never lost.

The published checkpoint stores, for every adapted weight, a bank of rank-4 factors (one per task). The local
backend runs every batch with a single task (it groups rows by task), so a row's vector never depends on what it
is batched with, in any dtype. Linear layers run with that task's LoRA merged into the weight — merged once per
task switch, in fp32, from a kept copy of the base weight, so nothing drifts and a batch costs exactly a plain
forward — or, with ``merge=False``, add ``s * B_t (A_t x)`` to the base output. Embedding tables are never
copied: their low-rank term is added on lookup. Task -1 means base weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TaskSelection:
    """The task of the batch being run (-1 = base weights), shared by all LoRA modules of one model."""

    def __init__(self) -> None:
        self.task = -1

    def use(self, task: int) -> None:
        self.task = int(task)


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
    def merged_weight(self, task: int) -> torch.Tensor:
        """The weight of ``task`` (-1 = base) in the module's dtype, with the delta computed in fp32."""
        base = self.original if self.original is not None else self.base.weight
        if task < 0:
            return base.clone()
        delta = (self.lora_b[task].float() @ self.lora_a[task].float()) * self.scale
        return (base.float() + delta).to(base.dtype)

    @torch.no_grad()
    def _use(self, task: int) -> None:
        """Make ``base.weight`` the weight of ``task``."""
        if task != self.merged_task:
            self.base.weight.copy_(self.merged_weight(task))
            self.merged_task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        task = self.selection.task
        if self.original is not None:
            self._use(task)
            return self.base(x)
        y = self.base(x)
        if task < 0:
            return y
        return y + F.linear(F.linear(x, self.lora_a[task]), self.lora_b[task]) * self.scale


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
        task = self.selection.task
        if task < 0:
            return y
        return y + torch.matmul(F.embedding(ids, self.lora_a[task]), self.lora_b[task]) * self.scale
