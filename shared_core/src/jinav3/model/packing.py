"""Unpadded batches: the sequences of a batch laid end to end in one row, so padding costs no FLOPs.

The model sees ``input_ids`` of shape (1, total tokens), ``position_ids`` restarting at 0 for every sequence (RoPE
and learned positions stay per sequence), and ``cu_seq_lens_q/k`` (cumulative lengths, the FlashAttention varlen
convention, which transformers passes down to the attention function). Attention then never crosses a sequence:

- ``flash_attention_2`` (CUDA, ``flash-attn`` installed): transformers' own varlen path reads ``cu_seq_lens``;
- otherwise :data:`PACKED_ATTENTION`, registered here: SDPA over a nested (jagged) tensor on CUDA, one SDPA call
  per sequence elsewhere (the CPU path, which exists so that the GPU path's semantics are tested without a GPU).

The result is scattered back to (batch, longest, dim) on the device so callers see the usual padded layout.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jinav3.errors import InvalidInputError
from jinav3.model.lora import TaskSelection

#: Attention implementation name for packed rows without flash-attn (registered with transformers on import).
PACKED_ATTENTION = "jinav3_packed_sdpa"
PACKED_CAPABLE = (PACKED_ATTENTION, "flash_attention_2")


def varlen_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, scale: float | None,
    nested: bool | None = None,
) -> torch.Tensor:
    """Bidirectional attention of packed (tokens, heads, head_dim) tensors, each sequence attending to itself only.

    ``nested`` (default: on CUDA) runs one SDPA over a jagged nested tensor (flash / memory-efficient kernels);
    otherwise one SDPA call per sequence."""
    nested = q.is_cuda if nested is None else nested
    if nested:
        offsets = cu_seqlens.to(torch.int64)
        q, k, v = (torch.nested.nested_tensor_from_jagged(t, offsets).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return out.transpose(1, 2).values()
    bounds = cu_seqlens.tolist()
    # (1, heads, length, head_dim): SDPA's fused CPU kernel takes 4-D inputs only; 3-D ones fall back to the math
    # path, which materialises the scores (2x slower end to end at 1,500 tokens, measured)
    parts = [
        F.scaled_dot_product_attention(*(t[a:b].transpose(0, 1)[None] for t in (q, k, v)), scale=scale)[0]
        .transpose(0, 1)
        for a, b in itertools.pairwise(bounds)
    ]
    return torch.cat(parts, dim=0)


def packed_sdpa_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: varlen attention when ``cu_seq_lens_q`` is given, plain SDPA otherwise."""
    if cu_seq_lens_q is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if query.shape[0] != 1:
        raise InvalidInputError("packed attention expects all sequences in one row")
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, head_dim)
    return varlen_attention(q, k, v, cu_seq_lens_q, scaling).unsqueeze(0), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_ATTENTION, flash_attention_mask)  # no dense mask is ever built


_register()


def packed_attention(device: torch.device) -> str:
    """FlashAttention-2 varlen on CUDA when ``flash-attn`` is installed, else :data:`PACKED_ATTENTION`."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return PACKED_ATTENTION


def check_packed_attention(name: str) -> None:
    if name not in PACKED_CAPABLE:
        raise InvalidInputError(
            f"unpadded batches need attention that reads sequence boundaries ({', '.join(PACKED_CAPABLE)}), "
            f"not {name!r}; leave attn_implementation unset or pass unpadded=False"
        )


#: A packed row has at least this many tokens (a discarded filler sequence makes up the rest): MKL's fp32 GEMM
#: takes another path, with other rounding, for fewer than 12 rows (measured: 1-3, 5-7 and 9-11 rows differ from
#: the same rows inside a larger GEMM), which would make a short text's vector depend on whether it ran alone.
MIN_PACKED_TOKENS = 16


def _forward_one_task(module: nn.Module, seqs: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """Hidden states (tokens, dim) of ``seqs`` packed into one row, filler excluded."""
    real = sum(len(s) for s in seqs)
    if real < MIN_PACKED_TOKENS:
        seqs = [*seqs, np.zeros(MIN_PACKED_TOKENS - real, dtype=np.int64)]  # its own sequence: attends to itself
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    ids = torch.from_numpy(np.concatenate(seqs).astype(np.int64)).to(device)[None]
    positions = torch.from_numpy(np.concatenate([np.arange(n) for n in lengths])).to(device)[None]
    cu = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)).to(device)
    longest = int(lengths.max())
    out = module(input_ids=ids, position_ids=positions, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                 max_length_q=longest, max_length_k=longest)
    return out.last_hidden_state[0, :real]  # (tokens, dim)


def forward_unpadded(
    module: nn.Module,
    selection: TaskSelection | None,
    seqs: Sequence[np.ndarray],
    task: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states (batch, longest, dim) and mask (batch, longest) for ``seqs`` of one task, computed without
    padding: the sequences are packed into one row and the task LoRA applies to all of it."""
    if not seqs:
        raise InvalidInputError("no sequences to run")
    lengths = [len(s) for s in seqs]
    longest = max(lengths)
    if selection is not None:
        selection.use(task)
    flat = _forward_one_task(module, list(seqs), device)
    hidden = flat.new_zeros((len(seqs), longest, flat.shape[-1]))
    mask = torch.zeros((len(seqs), longest), dtype=torch.long, device=device)
    rows = torch.repeat_interleave(torch.arange(len(seqs), device=device), torch.tensor(lengths, device=device))
    cols = torch.cat([torch.arange(n, device=device) for n in lengths])
    hidden[rows, cols] = flat
    mask[rows, cols] = 1
    return hidden, mask
