"""Local backend, ONNX Runtime engine: the official ``onnx/model.onnx`` layout on the CPU, without torch.

Only the forward pass differs from the torch engine (:mod:`jinav3.backends.local_base` holds the rest). The graph
is the one the jina-embeddings-v3 repository publishes, or one written by ``jinav3 export-onnx``
(:mod:`jinav3.model.onnx_export`): ``input_ids``, ``attention_mask`` and — for models with task adapters — a scalar
``task_id``; first output the token hidden states. The official graph has no "base weights" path, so ``task=None``
is refused on a model with adapters.

Batch-mates: ONNX Runtime has no packed (unpadded) attention, so rows of a batch are padded to its longest. Batches
hold sequences of one exact length by default (``max_padding=0``): no FLOP on padding and no padded attention, so a
row never sees padding whatever it is batched with; the tests check its vector is bit-identical alone and in any
batch. ``max_padding=0.1`` allows padded batches (docs/performance.md has the measured cost and effect).

``dtype="int8"``: the whole graph quantised by ONNX Runtime (:mod:`jinav3.model.onnx_int8`), attention included.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jinav3.backends.local_base import LocalBase
from jinav3.errors import InvalidInputError, ModelLoadError
from jinav3.model.files import (
    DEFAULT_MODEL,
    encoder_max_positions,
    is_jina_v3_original,
    read_config,
    resolve_model_dir,
    task_instructions,
)
from jinav3.runtime.settings import check_dtype

#: The graph inside a model folder, and what a hub download fetches (never the safetensors weights).
GRAPH_FILE = "onnx/model.onnx"
HUB_FILES = ["*.json", "*.txt", "*.model", GRAPH_FILE, "onnx/model.onnx_data"]
ONNX_INSTALL = "pip install 'jinav3[onnx]'"


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(f"engine='onnx' needs onnxruntime, which is not installed; {ONNX_INSTALL}") from None
    return onnxruntime


def _session(graph: Path, threads: int | None) -> Any:
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


class OnnxBackend(LocalBase):
    """Runs ``onnx/model.onnx`` with ONNX Runtime on the CPU. Thread-safe: forward passes are serialised."""

    engine = "onnx"

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int = 8192,
        token_budget: int | None = None,
        max_batch: int = 256,
        threads: int | None = None,
        max_padding: float = 0.0,
    ) -> None:
        """``dtype``: ``float32`` (default; the graph as written) or ``int8`` (the whole graph quantised on load).
        ``threads``: ONNX Runtime's intra-op threads (default: one per physical core). ``max_padding``: largest
        share of padding in a batch; 0 (default) batches sequences of one exact length only, so no row is ever
        padded; 0.1 (the torch engine's padded setting) is faster on mixed lengths (docs/performance.md)."""
        if not 0.0 <= max_padding < 1.0:
            raise InvalidInputError(f"max_padding must be in [0, 1), got {max_padding}")
        self.max_padding = max_padding
        if device not in (None, "cpu"):
            raise InvalidInputError(f"engine='onnx' runs on the CPU only, not on {device!r}; use engine='torch' there")
        self.int8 = dtype is not None and check_dtype(dtype) == "int8"
        if dtype is not None and check_dtype(dtype) not in ("float32", "int8"):
            raise InvalidInputError(
                f"engine='onnx' runs float32 or int8, not {dtype!r}; use engine='torch' for {check_dtype(dtype)}"
            )
        folder = resolve_model_dir(model, HUB_FILES)
        graph = folder / GRAPH_FILE
        if not graph.is_file():
            raise ModelLoadError(
                f"{folder} has no {GRAPH_FILE}; write one with `jinav3 export-onnx {folder} OUT` (needs torch) and "
                "load OUT, or use engine='torch'"
            )
        config = read_config(folder)
        self._session = self._load(graph, threads)
        inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs
        if missing:
            raise ModelLoadError(f"{graph} lacks the input(s) {sorted(missing)} of the official layout")
        self._takes_task = "task_id" in inputs
        jina = is_jina_v3_original(config)
        if jina and not self._takes_task:
            raise ModelLoadError(f"{graph} has no task_id input, but config.json declares task adapters")
        self._output = self._session.get_outputs()[0].name
        self._setup(
            model, folder, config,
            tasks=tuple(config["lora_adaptations"]) if jina else (),
            instructions=task_instructions(config),
            hidden_size=int(config["hidden_size"]),
            max_positions=None if jina else encoder_max_positions(folder, config),
            max_length=max_length, token_budget=token_budget or 4_096, max_batch=max_batch,
        )

    def _load(self, graph: Path, threads: int | None) -> Any:
        if not self.int8:
            return _session(graph, threads)
        from jinav3.model import onnx_int8

        cached = onnx_int8.cached_int8_graph(graph)
        if cached is not None:
            return _session(cached, threads)
        with tempfile.TemporaryDirectory(prefix="jinav3-int8-") as scratch:
            quantized = onnx_int8.quantize_graph(graph, Path(scratch))
            return _session(quantized, threads)  # the session holds the weights; the files may go

    def dtype_name(self) -> str:
        return "int8" if self.int8 else "float32"

    def _task_id(self, task: str | None) -> int:
        task_id = super()._task_id(task)
        if task_id < 0 and self.tasks:
            raise InvalidInputError(
                "task=None (base weights without an adapter) does not exist in the ONNX graph, which always applies "
                f"one of its task adapters; pick one of {self.tasks}, or use engine='torch'"
            )
        return task_id

    def _batches(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool
    ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        for task_id, batch in self._progress(self._plan(sequences, task_ids), show_progress):
            self._check_stop()
            ids, mask = self._padded(sequences, batch)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if self._takes_task:
                feeds["task_id"] = np.array(task_id, dtype=np.int64)
            with self._lock:
                (hidden,) = self._session.run([self._output], feeds)
            yield batch, hidden, mask
