"""Local backend, OpenVINO engine: the same official ``onnx/model.onnx`` as the ONNX Runtime engine, run by
OpenVINO's CPU plugin, without torch.

Everything but loading and running the graph is :class:`~jinav3.backends.onnx_engine.OnnxBackend`'s (and thereby
:mod:`jinav3.backends.local_base`'s): tokenizer, task ids, batching of one exact length per batch (so a row never
sees padding and its vector is bit-identical alone and in any batch), late chunking, pooling.

Precisions: ``float32`` (default; OpenVINO's precision hint pinned to f32, since on CPUs with native bf16 its own
default is bf16), ``bfloat16`` (only on CPUs with native bf16 — AVX512-BF16 or AMX — where OpenVINO runs it in
hardware; elsewhere it would silently run f32, so it is refused) and ``int8`` (int8 weights from
:mod:`jinav3.model.onnx_int8_weights`, activations quantised by OpenVINO per group of
:attr:`OpenVinoBackend.activation_group` values; what stays in float runs bf16 on native-bf16 CPUs, f32 elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinav3.backends.onnx_engine import Forward, LoadedGraph, OnnxBackend
from jinav3.errors import InvalidInputError, ModelLoadError
from jinav3.runtime.extras import FROM_CLONE
from jinav3.runtime.hardware import cpu_features
from jinav3.runtime.settings import ENGINE_DTYPES

OPENVINO_INSTALL = "pip install -e 'shared_core[openvino]'"
#: The int8-weight graph's name beside ``model.onnx`` (its tensors in ``model_int8_weights.onnx_data``).
INT8_NAME = "model_int8_weights.onnx"
#: OpenVINO's name of each precision of the hint.
_HINTS = {"float32": "f32", "bfloat16": "bf16"}


def _openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise ModelLoadError(f"engine='openvino' needs openvino, which is not installed; {OPENVINO_INSTALL} "
                             f"({FROM_CLONE})") from None
    return openvino


class OpenVinoBackend(OnnxBackend):
    """Runs ``onnx/model.onnx`` with OpenVINO on the CPU. Thread-safe: forward passes are serialised."""

    engine = "openvino"
    dtypes = ENGINE_DTYPES["openvino"]
    #: int8: one activation scale per this many values (OpenVINO's ``DYNAMIC_QUANTIZATION_GROUP_SIZE``); measured
    #: against 32, 64 and 384 by benchmarks/bench_graph_choices.py (docs/performance.md).
    activation_group = 128

    def _precision(self, dtype: str | None) -> str:
        chosen = super()._precision(dtype)
        if chosen == "bfloat16" and not cpu_features().native_bf16:
            raise InvalidInputError(
                f"dtype='bfloat16' on engine='openvino' needs a CPU with native bf16 (AVX512-BF16 or AMX); this one "
                f"({cpu_features().describe()}) has none, so OpenVINO would run float32 instead; use dtype='float32' "
                "or dtype='int8'"
            )
        return chosen

    def _open(self, graph: Path, threads: int | None) -> LoadedGraph:
        """Load ``graph`` in this engine's precision. The express lane gets the same model compiled again with the
        same settings (bit-identical vectors; OpenVINO shares the weights: +12 MB for MiniLM int8), because a
        second request on one compiled model waits for its single stream."""
        ov = _openvino()
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self._float_hint(), "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if self.precision == "int8":
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = self.activation_group  # a scale per group: outliers stay local
            from jinav3.model.onnx_int8 import kept_beside
            from jinav3.model.onnx_int8_weights import compress_weights

            with kept_beside(graph, INT8_NAME, lambda target: compress_weights(graph, target)) as quantized:
                model = core.read_model(str(quantized))
                compiled = core.compile_model(model, "CPU", config)  # holds the weights
        else:
            model = core.read_model(str(graph))
            compiled = core.compile_model(model, "CPU", config)

        def forward_of(compiled: Any) -> Forward:
            request = compiled.create_infer_request()
            return lambda feeds: request.infer(feeds)[0]

        return LoadedGraph(set().union(*(i.get_names() for i in compiled.inputs)), forward_of(compiled),
                           lambda: forward_of(core.compile_model(model, "CPU", config)))

    def _float_hint(self) -> str:
        """OpenVINO's precision for what runs in float; int8's float parts (activation quantisation, attention,
        glue) run bf16 where the CPU has it natively."""
        if self.precision == "int8":
            return "bf16" if cpu_features().native_bf16 else "f32"
        return _HINTS[self.precision]
