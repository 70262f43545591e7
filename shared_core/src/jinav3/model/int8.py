"""int8 on CPU: int8 weights, activations quantised on the fly, the int8 GEMMs run by ONNX Runtime.

Why ONNX Runtime: measured on this project's AVX2 machine (torch 2.13, a 1024->4096->1024 MLP over 2,048 tokens),
torchao 0.18's ``Int8DynamicActivationInt8WeightConfig`` is ~25x *slower* than fp32 in eager mode and still slower
after ``torch.compile`` (which took 100 s), while ONNX Runtime's dynamic int8 MatMul (MLAS kernels) is ~1.9x
faster. The deprecated ``torch.ao.quantization`` eager API is not used.

Only the Linear layers are quantised (they are ~90 % of the FLOPs up to a few thousand tokens); embeddings,
LayerNorm, RoPE and attention stay fp32 in torch. Each Linear becomes a small ONNX graph around ORT's integer
``MatMulInteger``: weights int8 per output channel (ORT's ``quantize_dynamic(per_channel=True, weight_type=QInt8)``
formula, vectorised: its own routine loops over channels in Python, ~2 s per 4096x1024 matrix; a test checks the
two agree bit for bit), activations uint8 with a scale and zero point per row (token), computed on every call.
One scale for the whole call (``quantize_dynamic``'s own pattern, which ORT fuses) is faster but not accurate
enough on trained weights: on all-MiniLM-L6-v2 over ``examples/corpus`` the minimum cosine to fp32 was 0.983 with
it and 0.991 with per-row scales (the FFN's second Linear, fed by heavy-tailed GELU rows, loses most).

Without VNNI, x86 int8 kernels multiply uint8 x int8 pairs into saturating int16 sums; 7-bit weights
(``reduce_range``) keep those exact, so it is on by default there (ORT's own advice). Measured on MiniLM: without it
the minimum cosine to fp32 fell to 0.990 on a random MLP; with it 0.9998.

Task adapters: the int8 copy of a LoRA Linear is built from that task's *merged* fp32 weight ``W + s B_t A_t``,
lazily, once per task in use, and cached, so switching tasks is exact up to int8 rounding of the merged weight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from torch import nn

from jinav3.errors import InvalidInputError
from jinav3.model.lora import LoRALinear, TaskSelection
from jinav3.runtime.hardware import cpu_features
from jinav3.runtime.settings import check_dtype


def is_int8(dtype: object) -> bool:
    """True when a local-backend ``dtype`` setting asks for int8 (``"int8"``/``"qint8"``, any case)."""
    return isinstance(dtype, str) and check_dtype(dtype) == "int8"


def default_reduce_range() -> bool:
    """7-bit weights where the CPU lacks VNNI (see the module docstring)."""
    return not cpu_features().vnni


def quantize_weight(weight: torch.Tensor, reduce_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 of a Linear ``weight`` (out, in): ``(q (in, out) int8, scale (out,) f32)``.

    ORT's ``quantize_dynamic(per_channel=True, weight_type=QInt8, reduce_range=...)`` formula: the range of each
    channel is ``[-m, m]`` with ``m = max|w|`` (zero included), mapped onto ``[-127, 127]`` (``[-64, 64]`` with
    ``reduce_range``); the scale is computed in float64 and stored as float32; an all-zero channel gets scale 1.
    """
    w = weight.detach().to(torch.float32).cpu().numpy().T  # (in, out): MatMul's B
    qmin, qmax = (-64, 64) if reduce_range else (-127, 127)
    absmax = np.abs(w).max(axis=0).astype(np.float64) if w.shape[0] else np.zeros(w.shape[1])
    scale64 = 2 * absmax / np.float64(qmax - qmin)
    scale = scale64.astype(np.float32)
    scale[scale64 < np.finfo(np.float32).tiny] = 1.0
    q = np.clip(np.round(w / scale), -128, 127).astype(np.int8)
    return np.ascontiguousarray(q), scale


def linear_graph(q: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, per_row: bool = False) -> Any:
    """The ONNX graph of an int8 Linear for X of shape (n, in).

    ``per_row=False``: ``quantize_dynamic``'s own pattern, one uint8 scale for the whole X (ORT fuses it into a
    single ``DynamicQuantizeMatMul``); output ``Y``, bias included. ``per_row=True``: one asymmetric uint8 scale
    ``s_r`` and zero point ``z_r`` per row (token), for inputs with heavy-tailed rows such as a GELU output. Since
    ``X ~ s_r (Xq - z_r)``, ``X @ W ~ s_r * (T - z_r * c) + b`` with ``T = (Xq @ Wq) * w_scale`` (one fused
    ``MatMulIntegerToFloat``) and ``c = colsum(Wq) * w_scale``; the graph returns ``T``, ``s_r`` and ``z_r`` and
    :class:`Int8Linear` applies that epilogue in two in-place passes. (Doing it in ONNX ops, each materialising an
    (n, out) tensor, cost as much as the int8 GEMM itself; ``bias`` is then not part of the graph.)
    """
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_out = q.shape
    node = helper.make_node
    inits = [numpy_helper.from_array(q, "W_quantized"), numpy_helper.from_array(scale, "W_scale")]
    if per_row:
        inits += [
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array(255.0, dtype=np.float32), "levels"),
            numpy_helper.from_array(np.array(np.finfo(np.float32).tiny, dtype=np.float32), "tiny"),
        ]
        nodes = [
            node("ReduceMax", ["X", "axis1"], ["row_max"], keepdims=1),
            node("ReduceMin", ["X", "axis1"], ["row_min"], keepdims=1),
            node("Max", ["row_max", "zero"], ["hi"]),  # the range must hold 0 (exact zero, as in ORT)
            node("Min", ["row_min", "zero"], ["lo"]),
            node("Sub", ["hi", "lo"], ["span"]),
            node("Div", ["span", "levels"], ["raw_scale"]),
            node("Max", ["raw_scale", "tiny"], ["X_scale"]),  # (n, 1)
            node("Div", ["lo", "X_scale"], ["neg_zp"]),
            node("Neg", ["neg_zp"], ["zp_unrounded"]),
            node("Round", ["zp_unrounded"], ["X_zp"]),  # (n, 1), in [0, 255]
            node("Reshape", ["X_scale", "flat"], ["X_scale_1d"]),
            node("Cast", ["X_zp"], ["X_zp_u8"], to=TensorProto.UINT8),
            node("Reshape", ["X_zp_u8", "flat"], ["X_zp_1d"]),
            node("QuantizeLinear", ["X", "X_scale_1d", "X_zp_1d"], ["X_q"], axis=0),
            # one fused MLAS call: the integer GEMM with the per-column weight scale applied in its output stage
            node("MatMulIntegerToFloat", ["X_q", "W_quantized", "one", "W_scale"], ["T"], domain="com.microsoft"),
        ]
        outputs = ["T", "X_scale", "X_zp"]  # the bias is added by the epilogue
    else:
        inits.append(numpy_helper.from_array(np.zeros(n_out, dtype=np.int8), "W_zero_point"))
        nodes = [
            node("DynamicQuantizeLinear", ["X"], ["X_q", "X_scale", "X_zero_point"]),
            node("Mul", ["X_scale", "W_scale"], ["Y_scale"]),
            node("MatMulInteger", ["X_q", "W_quantized", "X_zero_point", "W_zero_point"], ["Y_int32"]),
            node("Cast", ["Y_int32"], ["Y_raw"], to=TensorProto.FLOAT),
            node("Mul", ["Y_raw", "Y_scale"], ["Y" if bias is None else "Y_nobias"]),
        ]
        outputs = ["Y"]
        if bias is not None:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(bias, dtype=np.float32), "B"))
            nodes.append(node("Add", ["Y_nobias", "B"], ["Y"]))
    graph = helper.make_graph(
        nodes, "int8_linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", n_in])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        inits,
    )
    # 18: ReduceMax takes its axes as an input; com.microsoft 1: MatMulIntegerToFloat
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def _session(model: Any) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise InvalidInputError(
            "dtype='int8' needs ONNX Runtime (onnxruntime, onnx): pip install -e 'shared_core[int8]' "
            "(at the root of a clone of the jinav3 repository; jinav3 is not on PyPI)"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # parallel over row blocks instead (see _row_blocks)
    options.inter_op_num_threads = 1
    # torch runs attention/LayerNorm between the int8 GEMMs on the same cores: ORT threads must not spin there.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # one session per Linear: a memory arena each would hold its largest activations (GBs over 24 layers)
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


_SCRATCH = threading.local()
_MIN_BLOCK_ROWS = 16
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _row_blocks(rows: int) -> list[tuple[int, int]]:
    """Row ranges run at once, one per torch thread (at least ``_MIN_BLOCK_ROWS`` rows each).

    Why not ORT's own threads: measured on the 2-core AVX2 machine, the whole 4-layer model ran at 1.05x fp32 with
    one 2-thread ORT run per Linear and 1.40x with two 1-thread runs over half the rows each, in the same process:
    ORT's per-row quantisation ops run on one thread, and its pool wakes between every op. Rows are quantised
    alone, so the blocks give exactly the one-run result."""
    parts = max(1, min(torch.get_num_threads(), rows // _MIN_BLOCK_ROWS))
    bounds = [rows * i // parts for i in range(parts + 1)]
    return list(pairwise(bounds))


def _pool(workers: int) -> ThreadPoolExecutor:
    """A shared pool with at least ``workers`` threads (ORT releases the GIL while it runs)."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL, _POOL_SIZE = ThreadPoolExecutor(workers, thread_name_prefix="jinav3-int8"), workers
        return _POOL


def _scratch(rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This thread's buffers for one per-row int8 product: ``T`` (rows, width), the row scales and zero points
    (rows, 1). Reused by every layer: a fresh 64 MB output per Linear costs page faults comparable to the GEMM's
    savings. Each layer's epilogue consumes them before the next layer runs on this thread."""
    need = rows * (width + 2)
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.numel() < need:
        with torch.inference_mode(False):  # a normal tensor: written in place in and out of inference mode
            buffer = _SCRATCH.buffer = torch.empty(need, dtype=torch.float32)
    product = buffer[: rows * width].view(rows, width)
    scales = buffer[rows * width: rows * (width + 1)].view(rows, 1)
    zeros = buffer[rows * (width + 1): need].view(rows, 1)
    return product, scales, zeros


class Int8Linear(nn.Module):
    """A Linear layer whose product runs in int8 (weights per channel, activations per call) in ONNX Runtime."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        reduce_range: bool | None = None,
        per_row: bool = True,
    ) -> None:
        """``per_row=False`` uses one activation scale per call (ORT's fused kernel: faster, less exact)."""
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.reduce_range = default_reduce_range() if reduce_range is None else reduce_range
        self.per_row = per_row
        q, scale = quantize_weight(weight, self.reduce_range)
        b = None if bias is None else bias.detach().to(torch.float32).cpu().numpy()
        self._session = _session(linear_graph(q, scale, None if per_row else b, self.per_row))
        # per-row epilogue terms: the bias and the zero-point column term c = colsum(Wq) * w_scale
        self._bias = torch.zeros(self.out_features) if b is None else torch.from_numpy(b.copy())
        self._colsum = torch.from_numpy(q.astype(np.float32).sum(0) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise InvalidInputError("dtype='int8' runs on the CPU only; on a GPU use bfloat16")
        flat = x.reshape(-1, self.in_features).to(torch.float32).contiguous().numpy()
        if flat.shape[0] == 0:
            return x.new_zeros((*x.shape[:-1], self.out_features), dtype=torch.float32)
        if not self.per_row:
            (y,) = self._session.run(None, {"X": flat})
            return torch.from_numpy(y).view(*x.shape[:-1], self.out_features)
        n = flat.shape[0]
        product, row_scale, row_zero = _scratch(n, self.out_features)
        work = [(flat[lo:hi], product[lo:hi], row_scale[lo:hi], row_zero[lo:hi]) for lo, hi in _row_blocks(n)]
        futures = [_pool(len(work) - 1).submit(self._product, *block) for block in work[1:]]  # none for one block
        self._product(*work[0])
        for future in futures:
            future.result()
        # s_r * (T - z_r c) + b in two passes, elementwise per row: a row never depends on its batch-mates
        y = torch.addcmul(self._bias, row_scale, product.addr_(row_zero[:, 0], self._colsum, alpha=-1))
        return y.view(*x.shape[:-1], self.out_features)

    def _product(self, x: np.ndarray, product: torch.Tensor, row_scale: torch.Tensor, row_zero: torch.Tensor) -> None:
        """One ORT run over the rows ``x``, writing straight into the given buffer slices (no output copy)."""
        binding = self._session.io_binding()
        binding.bind_input("X", "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
        for name, buffer in (("T", product), ("X_scale", row_scale), ("X_zp", row_zero)):
            binding.bind_output(name, "cpu", 0, np.float32, list(buffer.shape), buffer.data_ptr())
        self._session.run_with_iobinding(binding)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, reduce_range={self.reduce_range}, "
                f"per_row={self.per_row}")


def merged_weight(layer: LoRALinear, task: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fp32 ``(weight, bias)`` of ``layer`` for ``task`` (-1 = base): ``W + scale * B_t @ A_t``."""
    return layer.merged_weight(task).float(), layer.base.bias


class TaskInt8Linear(nn.Module):
    """Stands in for a :class:`~jinav3.model.lora.LoRALinear`: one :class:`Int8Linear` per task in use, built on first
    use from that task's merged weight and kept (the backend runs one task per batch)."""

    def __init__(
        self,
        weights_for: Callable[[int], tuple[torch.Tensor, torch.Tensor | None]],
        selection: TaskSelection,
        reduce_range: bool | None = None,
    ) -> None:
        super().__init__()
        self.weights_for = weights_for
        self.selection = selection
        self.reduce_range = default_reduce_range() if reduce_range is None else reduce_range
        self.per_task: dict[int, Int8Linear] = {}
        self._build_lock = threading.Lock()

    def for_task(self, task: int) -> Int8Linear:
        with self._build_lock:
            if task not in self.per_task:
                weight, bias = self.weights_for(task)
                self.per_task[task] = Int8Linear(weight, bias, self.reduce_range)
            return self.per_task[task]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.for_task(self.selection.task)(x)


def quantize_model(module: nn.Module, selection: TaskSelection | None, reduce_range: bool | None = None) -> int:
    """Replace, in place, every LoRA Linear by a :class:`TaskInt8Linear` and every other ``nn.Linear`` by an
    :class:`Int8Linear`. Returns how many layers were replaced. The module must live on the CPU in fp32."""
    targets = [(name, sub) for name, sub in module.named_modules() if isinstance(sub, LoRALinear | nn.Linear)]
    inside_lora = {f"{name}.base" for name, sub in targets if isinstance(sub, LoRALinear)}
    count = 0
    for name, sub in targets:
        if name in inside_lora:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        if isinstance(sub, LoRALinear):
            if selection is None:
                raise InvalidInputError("a LoRA model needs its task selection to be quantised")
            replacement: nn.Module = TaskInt8Linear(lambda t, layer=sub: merged_weight(layer, t), selection,
                                                    reduce_range)
        else:
            replacement = Int8Linear(sub.weight, sub.bias, reduce_range)
        setattr(parent, child, replacement)
        count += 1
    return count
