"""int8 for the ONNX graph: the MatMuls — projections, the FFN's up projection, the LoRA paths and the attention
products (scores and weighted values) — by ONNX Runtime's dynamic quantisation: int8 weights per output channel,
activations quantised on the fly with one scale per call.

Unlike the torch engine's int8 (:mod:`jinav3.model.int8`: Linear layers only, attention and glue in fp32), the
attention products are int8 too. One exception, measured: the FFN's down projection (a weight that narrows, fed by
heavy-tailed GELU activations) stays fp32. ONNX Runtime's dynamic quantisation has one activation scale per call,
and on all-MiniLM-L6-v2 over ``examples/corpus`` quantising it brought the minimum cosine to fp32 to 0.985 (every
MatMul) against 0.993 without it; the bound is 0.99. Without VNNI, x86 int8 kernels can saturate int16 sums;
7-bit weights (``reduce_range``) keep them exact there, as in :mod:`jinav3.model.int8`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jinav3.runtime.hardware import cpu_features


def down_projections(model: Any) -> list[str]:
    """Names of the MatMuls reading what a narrowing constant weight (more rows than columns: the FFN's down
    projection) reads — that projection and its LoRA path."""
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    matmuls = [node for node in model.graph.node if node.op_type == "MatMul"]
    narrowed = {node.input[0] for node in matmuls
                if len(shapes.get(node.input[1], ())) == 2 and shapes[node.input[1]][0] > shapes[node.input[1]][1]}
    return [node.name for node in matmuls if node.input[0] in narrowed]


def cached_int8_graph(graph: Path) -> Path | None:
    """The int8 graph kept beside ``graph`` (``model_int8.onnx``, ``model_int8_7bit.onnx`` without VNNI), written
    on first use where the folder is writable: quantising takes seconds to minutes, loading it again does not.
    None when the folder is read-only (the caller quantises into a temporary folder)."""
    cached = graph.with_name(f"model_int8{'' if cpu_features().vnni else '_7bit'}.onnx")
    if cached.is_file() and cached.stat().st_mtime >= graph.stat().st_mtime:
        return cached
    if not os.access(graph.parent, os.W_OK):
        return None
    written = quantize_graph(graph, graph.parent, f"{cached.name}.{os.getpid()}.partial")
    written.replace(cached)  # atomic: a concurrent reader sees the old state or the whole file
    return cached


def quantize_graph(graph: Path, scratch: Path, name: str = "model_int8.onnx") -> Path:
    """Write the int8 version of ``graph`` into the folder ``scratch``; returns its path."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = down_projections(onnx.load(str(graph), load_external_data=False))
    target = scratch / name
    quantize_dynamic(
        graph,
        target,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=not cpu_features().vnni,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        extra_options={"MatMulConstBOnly": False},  # attention's activation x activation products too
    )
    return target
