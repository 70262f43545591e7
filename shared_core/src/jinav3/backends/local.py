"""Local backend, torch engine: jina-embeddings-v3 (or any HF encoder) on torch, with token-budget batching.

Everything but the forward pass is shared with the ONNX engine (:mod:`jinav3.backends.local_base`): tokenisation
with the checkpoint's ``tokenizer.json`` (exact char offsets for late chunking), instructions, late chunking.
Sequences are grouped by task — so every batch runs one task's merged weights and a row's vector never depends on
what it is batched with — then sorted by length and packed into batches of at most ``token_budget`` padded tokens;
results come back in input order.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from jinav3.backends.local_base import Abandoned, LocalBase
from jinav3.errors import InvalidInputError, ModelLoadError, PerformanceWarning
from jinav3.late_chunking import pooling_torch
from jinav3.late_chunking import windows as late
from jinav3.late_chunking.preparation import PreparedDocument
from jinav3.model import int8 as quantization
from jinav3.model import packing
from jinav3.model.checkpoint import load_jina_v3, load_plain_encoder
from jinav3.model.files import DEFAULT_MODEL, is_jina_v3_original, load_tokenizer, read_config, resolve_model_dir
from jinav3.runtime import hardware, openmp
from jinav3.runtime.settings import check_device, check_dtype

__all__ = ["Abandoned", "LocalBackend", "load_tokenizer", "pick_attention", "pick_device", "pick_dtype"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # canonical names


def pick_device(device: str | torch.device | None) -> torch.device:
    """The device asked for (refused at once, naming the way out, when this machine or this torch build lacks it),
    else the best available."""
    if device is not None:
        chosen = device if isinstance(device, torch.device) else torch.device(check_device(device))
        check_device_available(chosen)
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device_available(device: torch.device) -> None:
    """A :class:`ModelLoadError` before any weight moves when ``device`` is not usable here: a CUDA device on a
    CPU-only torch build or on a machine without that GPU, MPS or XPU where there is none."""
    if device.type == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise ModelLoadError(f"device {str(device)!r}: this torch ({torch.__version__}) is a CPU-only build; use "
                                 "device='cpu' (--device cpu), or install a CUDA build of torch (pytorch.org)")
        count = torch.cuda.device_count()
        if count == 0 or (device.index or 0) >= count:
            found = "no CUDA GPU is visible" if count == 0 else f"only cuda:0..cuda:{count - 1} are visible"
            raise ModelLoadError(f"device {str(device)!r}: {found}; use device='cpu' (--device cpu) or check "
                                 "CUDA_VISIBLE_DEVICES and the driver (nvidia-smi)")
    elif device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ModelLoadError(f"device {str(device)!r}: no Apple GPU (MPS) is available here; use device='cpu'")
    elif device.type == "xpu":
        if getattr(torch, "xpu", None) is None or not torch.xpu.is_available():
            raise ModelLoadError(f"device {str(device)!r}: no Intel GPU (XPU) is available here; use device='cpu'")


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None: chosen by hardware (:func:`jinav3.runtime.hardware.auto_dtype`: bf16 on CUDA and on CPUs with native bf16,
    else fp32). An explicit choice is honoured, with a :class:`~jinav3.errors.PerformanceWarning` where it is
    emulated."""
    if dtype is None:
        return hardware.auto_dtype(device)
    chosen = dtype if isinstance(dtype, torch.dtype) else _DTYPES.get(check_dtype(dtype))
    if chosen is None:
        raise InvalidInputError(f"dtype {dtype!r} is not a torch dtype; int8 is handled by LocalBackend")
    hardware.warn_if_slow(chosen, device)
    return chosen


def pick_attention(device: torch.device) -> str:
    """SDPA everywhere (never materialises the n x n scores); FlashAttention-2 on CUDA when installed."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


class LocalBackend(LocalBase):
    """Runs the model in this process on torch. Thread-safe: forward passes are serialised by a lock."""

    engine = "torch"

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int = 8192,
        token_budget: int | None = None,
        max_batch: int = 256,
        attn_implementation: str | None = None,
        merge_lora: bool = True,
        unpadded: bool | None = None,
        device_pooling: bool | None = None,
    ) -> None:
        """``merge_lora`` keeps a copy of the adapted Linear weights (about 1.2 GB in fp32 for jina-v3) so a task's
        LoRA is merged once per task switch; ``False`` saves that memory and adds the low-rank term on every call.
        ``unpadded`` packs each batch's sequences into one row (:mod:`jinav3.model.packing`; default: on, unless an
        ``attn_implementation`` that cannot read sequence boundaries is named) and ``device_pooling`` pools
        late-chunking spans on the device (:mod:`jinav3.late_chunking.pooling_torch`; default: on for CUDA only)."""
        folder = resolve_model_dir(model)
        # int8 hook (jinav3.model.int8): fp32 model, Linear layers swapped for int8 ones after loading; CPU only.
        self.int8 = quantization.is_int8(dtype)
        # The two settings clash whatever this machine has: say so before asking whether the device exists.
        if self.int8 and device is not None and str(device).split(":")[0] != "cpu":
            raise InvalidInputError(f"dtype='int8' runs on the CPU only, not on {device}; use bfloat16 there")
        self.device = pick_device("cpu" if self.int8 and device is None else device)
        self.dtype = pick_dtype("float32" if self.int8 else dtype, self.device)
        merge_lora = merge_lora and not self.int8  # int8 copies are built from merged weights, never merged in place
        # Unpadded batches (jinav3.model.packing) by default wherever the attention can read sequence boundaries: no
        # FLOP on padding, and a row's vector is bit-identical whatever it is batched with (padded attention is not, by
        # up to 1e-7 in fp32, 1e-3 in bf16 and 1e-2 in int8). Device pooling (jinav3.late_chunking.pooling_torch): CUDA
        # only.
        if unpadded is None:
            unpadded = attn_implementation is None or attn_implementation in packing.PACKED_CAPABLE
        self.unpadded = bool(unpadded)
        self.device_pooling = self.device.type == "cuda" if device_pooling is None else bool(device_pooling)
        default_attention = packing.packed_attention(self.device) if self.unpadded else pick_attention(self.device)
        self.attn_implementation = attn_implementation or default_attention
        if self.unpadded:
            packing.check_packed_attention(self.attn_implementation)
        config = read_config(folder)
        if is_jina_v3_original(config):
            loaded = load_jina_v3(folder, config, self.dtype, self.device, self.attn_implementation, merge_lora)
        else:
            loaded = load_plain_encoder(folder, self.dtype, self.device, self.attn_implementation)
        if self.int8:
            quantization.quantize_model(loaded.module, loaded.selection)
            spinning = openmp.spin_warning(dtype, torch.get_num_threads())
            if spinning:
                warnings.warn(spinning, PerformanceWarning, stacklevel=2)
        self._module = loaded.module
        self._selection = loaded.selection
        self._setup(
            model, folder, config, tasks=loaded.tasks, instructions=loaded.instructions,
            hidden_size=loaded.hidden_size, max_positions=loaded.max_positions, max_length=max_length,
            token_budget=token_budget or (32_768 if self.device.type == "cuda" else 4_096), max_batch=max_batch,
        )
        _hook_layers(self._module, self._check_stop)

    def dtype_name(self) -> str:
        return "int8" if self.int8 else str(self.dtype).removeprefix("torch.")

    # -- forward -----------------------------------------------------------------------------------------
    def _batches(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """Yield (indices, hidden states (B, L, D), attention mask (B, L)) for token-budget batches of one task."""
        for task_id, batch in self._progress(self._plan(sequences, task_ids), show_progress):
            if self.unpadded:  # GPU-path hook: no padding in any FLOP (jinav3.model.packing)
                with self._lock, torch.inference_mode():
                    hidden, mask = packing.forward_unpadded(
                        self._module, self._selection, [sequences[i] for i in batch], task_id, self.device)
                yield batch, hidden, mask
                continue
            ids, mask = (torch.from_numpy(array).to(self.device) for array in self._padded(sequences, batch))
            with self._lock, torch.inference_mode():
                if self._selection is not None:
                    self._selection.use(task_id)
                hidden = self._module(input_ids=ids, attention_mask=mask).last_hidden_state
            yield batch, hidden, mask

    def _mean_pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        weights = mask.unsqueeze(-1).to(torch.float32)
        pooled = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return pooled.cpu().numpy()

    def _host(self, hidden: torch.Tensor) -> np.ndarray:
        return hidden.float().cpu().numpy()

    def _kept(self, vectors: torch.Tensor) -> Any:
        if self.device_pooling:  # GPU-path hook: token vectors stay on the device (jinav3.late_chunking.pooling_torch)
            return vectors
        return self._host(vectors)

    def _pooling_stream(self, item: PreparedDocument) -> late.PoolingStream:
        if self.device_pooling:
            return pooling_torch.TorchPoolingStream(item.tokens, item.pooling, self.full_dimensions, self.device)
        return super()._pooling_stream(item)


def _hook_layers(module: torch.nn.Module, check_stop: Callable[[], None]) -> None:
    """Before each layer of the module's longest ``ModuleList`` (the encoder's layers), run the backend's stop
    check (:meth:`LocalBase._check_stop`: raises :class:`Abandoned` inside :meth:`LocalBase.stoppable` once
    nobody waits)."""
    lists = [m for m in module.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        return

    def check(_module: torch.nn.Module, _args: Any) -> None:
        check_stop()

    for layer in max(lists, key=len):
        layer.register_forward_pre_hook(check)
