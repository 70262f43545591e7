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
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jinav3.errors import ModelLoadError
from jinav3.runtime.extras import FROM_CLONE
from jinav3.runtime.hardware import cpu_features

#: The onnx package writes the derived graphs; jinav3[onnx] leaves it out to stay small.
ONNX_INT8_INSTALL = "pip install -e 'shared_core[onnx-int8]'"


def _require_onnx(cached: Path) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ModelLoadError(
            f"dtype='int8' writes an int8 graph ({cached.name}, kept beside {cached.parent}) with the onnx package, "
            f"which is not installed; {ONNX_INT8_INSTALL} ({FROM_CLONE}; once written, the int8 graph loads without it)"
        ) from None


def down_projections(model: Any) -> list[str]:
    """Names of the MatMuls reading what a narrowing constant weight (more rows than columns: the FFN's down
    projection) reads — that projection and its LoRA path."""
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    matmuls = [node for node in model.graph.node if node.op_type == "MatMul"]
    narrowed = {node.input[0] for node in matmuls
                if len(shapes.get(node.input[1], ())) == 2 and shapes[node.input[1]][0] > shapes[node.input[1]][1]}
    return [node.name for node in matmuls if node.input[0] in narrowed]


def int8_name() -> str:
    """The name the int8 graph is kept under beside ``model.onnx`` (``model_int8_7bit.onnx`` without VNNI)."""
    return f"model_int8{'' if cpu_features().vnni else '_7bit'}.onnx"


@contextmanager
def kept_beside(graph: Path, name: str, write: Callable[[Path], object]) -> Iterator[Path]:
    """The path of a graph derived from ``graph`` (a quantised one), kept beside it as ``name``: written on first
    use where the folder is writable (quantising takes seconds to minutes, loading it again does not); where it is
    read-only, written to a temporary folder that is gone after the ``with`` (load the graph inside it).
    ``write(target)`` writes the derived graph to ``target``."""
    cached = graph.with_name(name)
    if cached.is_file() and cached.stat().st_mtime >= graph.stat().st_mtime:
        yield cached
        return
    _require_onnx(cached)
    if os.access(graph.parent, os.W_OK):
        partial = graph.with_name(f"{name}.{os.getpid()}.partial")
        with _no_leftovers(graph, partial):
            write(partial)
        partial.replace(cached)  # atomic: a concurrent reader sees the old state or the whole file
        yield cached
    else:
        with tempfile.TemporaryDirectory(prefix="jinav3-int8-") as scratch:
            target = Path(scratch) / name
            write(target)
            yield target


@contextmanager
def _no_leftovers(graph: Path, partial: Path) -> Iterator[None]:
    """A failed write leaves nothing beside the model: neither the partial graph nor the shape-inferred copy that
    ONNX Runtime's quantiser writes there (``model-inferred.onnx``) and removes only when it succeeds."""
    inferred = graph.with_name(f"{graph.stem}-inferred{graph.suffix}")
    had_inferred = inferred.exists()
    try:
        yield
    except BaseException:
        for path in (partial, partial.with_name(partial.name + "_data"), *(() if had_inferred else (inferred,))):
            path.unlink(missing_ok=True)
        raise


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
