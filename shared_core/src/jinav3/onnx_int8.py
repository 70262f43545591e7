"""int8 for the whole ONNX graph: every MatMul (projections, FFN and the attention products) by ONNX Runtime's
dynamic quantisation — int8 weights per output channel, activations quantised on the fly.

Unlike the torch engine's int8 (:mod:`jinav3.quantization`: Linear layers only, attention and glue in fp32), nothing
stays in fp32 but the normalisations, the softmax and the element-wise glue. Without VNNI, x86 int8 kernels can
saturate int16 sums; 7-bit weights (``reduce_range``) keep them exact there, as in :mod:`jinav3.quantization`.
"""

from __future__ import annotations

from pathlib import Path

from jinav3.hardware import cpu_features


def quantize_graph(graph: Path, scratch: Path) -> Path:
    """Write the int8 version of ``graph`` into the folder ``scratch``; returns its path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = scratch / "model_int8.onnx"
    quantize_dynamic(
        graph,
        target,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=not cpu_features().vnni,
        weight_type=QuantType.QInt8,
        extra_options={"MatMulConstBOnly": False},  # attention's activation x activation products too
    )
    return target
