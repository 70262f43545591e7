"""Local backend, OpenVINO engine: the same official ``onnx/model.onnx`` as the ONNX Runtime engine, run by
OpenVINO's CPU plugin, without torch.

Everything but loading and running the graph is :class:`~jinav3.backends.onnx_engine.OnnxBackend`'s (and thereby
:mod:`jinav3.backends.local_base`'s): tokenizer, task ids, batching of one exact length per batch (so a row never
sees padding and its vector is bit-identical alone and in any batch), late chunking, pooling.

Precisions: ``float32`` (default; OpenVINO's precision hint pinned to f32, since on CPUs with native bf16 its own
default is bf16), ``bfloat16`` (only on CPUs with native bf16 — AVX512-BF16 or AMX — where OpenVINO runs it in
hardware; elsewhere it would silently run f32, so it is refused) and ``int8`` (a QDQ graph from
:mod:`jinav3.model.onnx_qdq`, which OpenVINO runs with int8 kernels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinav3.backends.onnx_engine import Forward, OnnxBackend
from jinav3.errors import InvalidInputError, ModelLoadError
from jinav3.runtime.hardware import cpu_features

OPENVINO_INSTALL = "pip install 'jinav3[openvino]'"
#: OpenVINO's name of each precision of the hint.
_HINTS = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}  # int8: what is not quantised runs f32


def _openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise ModelLoadError(f"engine='openvino' needs openvino, which is not installed; {OPENVINO_INSTALL}") from None
    return openvino


class OpenVinoBackend(OnnxBackend):
    """Runs ``onnx/model.onnx`` with OpenVINO on the CPU. Thread-safe: forward passes are serialised."""

    engine = "openvino"
    dtypes = ("float32", "bfloat16", "int8")

    def _precision(self, dtype: str | None) -> str:
        chosen = super()._precision(dtype)
        if chosen == "bfloat16" and not cpu_features().native_bf16:
            raise InvalidInputError(
                f"dtype='bfloat16' on engine='openvino' needs a CPU with native bf16 (AVX512-BF16 or AMX); this one "
                f"({cpu_features().describe()}) has none, so OpenVINO would run float32 instead; use dtype='float32' "
                "or dtype='int8'"
            )
        return chosen

    def _open(self, graph: Path, threads: int | None) -> tuple[set[str], Forward]:
        ov = _openvino()
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _HINTS[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if self.precision == "int8":
            from jinav3.model import onnx_int8, onnx_qdq

            with onnx_int8.kept_beside(graph, onnx_qdq.QDQ_NAME,
                                       lambda target: onnx_qdq.quantize_qdq(graph, target, self._calibration())
                                       ) as quantized:
                compiled = core.compile_model(core.read_model(str(quantized)), "CPU", config)  # holds the weights
        else:
            compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
        request = compiled.create_infer_request()
        return set().union(*(i.get_names() for i in compiled.inputs)), lambda feeds: request.infer(feeds)[0]

    def _calibration(self) -> list[dict[str, Any]]:
        """Feeds that show the quantiser the activations of real text: the built-in multilingual sentences, alone
        and batched, under every task adapter."""
        from jinav3.model.onnx_qdq import CALIBRATION_TEXTS

        feeds = []
        for task in self.tasks or (None,):
            sequences = self.encode_ids(CALIBRATION_TEXTS, task, truncate=True)
            task_id = self.tasks.index(task) if task else -1
            for start in range(0, len(sequences), 8):
                group = list(range(start, min(start + 8, len(sequences))))
                ids, mask = self._padded(sequences, group)
                feeds.append(self._feeds(ids, mask, task_id))
        return feeds
