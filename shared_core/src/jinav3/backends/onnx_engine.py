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

The OpenVINO engine (:mod:`jinav3.backends.openvino_engine`) runs the same file: it differs only in
:meth:`OnnxBackend._open` (how the graph is loaded and run) and in the precisions it offers.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jinav3.backends.local_base import LocalBase
from jinav3.errors import InvalidInputError, JinaV3Error, ModelLoadError
from jinav3.model.files import (
    DEFAULT_MODEL,
    encoder_max_positions,
    is_jina_v3_original,
    read_config,
    resolve_model_dir,
    task_instructions,
)
from jinav3.model.graph_files import (
    check_external_data,
    check_graph_files,
    graph_load_error,
    missing_inputs_error,
)
from jinav3.runtime.extras import FROM_CLONE
from jinav3.runtime.settings import ENGINE_DTYPES, check_dtype

#: The graph inside a model folder, and what a hub download fetches (never the safetensors weights).
GRAPH_FILE = "onnx/model.onnx"
HUB_FILES = ["*.json", "*.txt", "*.model", GRAPH_FILE, "onnx/model.onnx_data"]
ONNX_INSTALL = "pip install -e 'shared_core[onnx]'"


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(f"engine='onnx' needs onnxruntime, which is not installed; {ONNX_INSTALL} "
                             f"({FROM_CLONE})") from None
    return onnxruntime


def _session(graph: Path, threads: int | None) -> Any:
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


#: A loaded graph's forward pass: feeds by input name -> its first output (the token hidden states).
Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class LoadedGraph:
    """What an engine's ``_open`` gives: the graph's input names, its forward pass, and a second forward pass that
    may run at the same time as the first (the express lane: :meth:`LocalBase.express`), made on first use."""

    inputs: set[str]
    forward: Forward
    beside: Callable[[], Forward]


class OnnxBackend(LocalBase):
    """Runs ``onnx/model.onnx`` with ONNX Runtime on the CPU. Thread-safe: forward passes are serialised."""

    engine = "onnx"
    runs_beside = True
    #: The precisions this engine runs; the first is the default.
    dtypes: tuple[str, ...] = ENGINE_DTYPES["onnx"]

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
        """``dtype``: one of :attr:`dtypes`, the first by default — ``float32`` (the graph as written) or ``int8``
        (quantised on load, kept beside the graph). ``threads``: intra-op threads (default: one per physical
        core). ``max_padding``: largest
        share of padding in a batch; 0 (default) batches sequences of one exact length only, so no row is ever
        padded; 0.1 (the torch engine's padded setting) is faster on mixed lengths (docs/performance.md)."""
        if not 0.0 <= max_padding < 1.0:
            raise InvalidInputError(f"max_padding must be in [0, 1), got {max_padding}")
        self.max_padding = max_padding
        if device not in (None, "cpu"):
            raise InvalidInputError(
                f"engine={self.engine!r} runs on the CPU only, not on {device!r}; use engine='torch' there"
            )
        self.precision = self._precision(dtype)
        folder = resolve_model_dir(model, HUB_FILES)
        graph = folder / GRAPH_FILE
        if not graph.is_file():
            raise ModelLoadError(
                f"{folder} has no {GRAPH_FILE}; write one with `jinav3 export-onnx {folder} OUT` (needs torch) and "
                f"load OUT, or use engine='torch'"
            )
        config = read_config(folder)
        jina = is_jina_v3_original(config)
        self._setup(
            model, folder, config,
            tasks=tuple(config["lora_adaptations"]) if jina else (),
            instructions=task_instructions(config),
            hidden_size=int(config["hidden_size"]),
            max_positions=None if jina else encoder_max_positions(folder, config),
            max_length=max_length, token_budget=token_budget or 4_096, max_batch=max_batch,
        )
        check_graph_files(graph)
        if self.precision == "int8" and importlib.util.find_spec("onnx") is not None:
            check_external_data(graph)  # before int8's first load spends seconds on imports and quantising
        try:
            self._graph = self._open(graph, threads)
        except JinaV3Error:
            raise
        except Exception as exc:  # the engines' native errors: a missing, cut-short or foreign file
            raise graph_load_error(graph, exc) from exc
        inputs = self._graph.inputs
        self._express_lock = threading.Lock()
        self._express_forward: Forward | None = None
        missing = {"input_ids", "attention_mask"} - inputs
        if missing:
            raise missing_inputs_error(graph, missing, inputs)
        if jina and "task_id" not in inputs:
            raise ModelLoadError(f"{graph} has no task_id input, but config.json declares task adapters; write the "
                                 "folder anew with `jinav3 export-onnx CHECKPOINT OUT`")

    def _precision(self, dtype: str | None) -> str:
        """The canonical precision asked for, refused when this engine does not run it."""
        chosen = self.dtypes[0] if dtype is None else check_dtype(dtype)
        if chosen not in self.dtypes:
            offered = f"{', '.join(self.dtypes[:-1])} or {self.dtypes[-1]}"
            raise InvalidInputError(
                f"engine={self.engine!r} runs {offered}, not {dtype!r}; use engine='torch' for {chosen}"
            )
        return chosen

    def _open(self, graph: Path, threads: int | None) -> LoadedGraph:
        """Load ``graph`` in this engine's precision. ONNX Runtime's ``run`` may be called from several threads at
        once, so the express lane runs the same session."""
        if self.precision == "int8":
            from jinav3.model import onnx_int8

            with onnx_int8.kept_beside(graph, onnx_int8.int8_name(),
                                       lambda target: onnx_int8.quantize_graph(graph, target.parent, target.name)
                                       ) as quantized:
                session = _session(quantized, threads)  # the session holds the weights; the files may go
        else:
            session = _session(graph, threads)
        output = session.get_outputs()[0].name

        def forward(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return session.run([output], feeds)[0]

        return LoadedGraph({i.name for i in session.get_inputs()}, forward, lambda: forward)

    def dtype_name(self) -> str:
        return self.precision

    def _task_id(self, task: str | None) -> int:
        task_id = super()._task_id(task)
        if task_id < 0 and self.tasks:
            raise InvalidInputError(
                "task=None (base weights without an adapter) does not exist in the ONNX graph, which always applies "
                f"one of its task adapters; pick one of {self.tasks}, or use engine='torch'"
            )
        return task_id

    def _feeds(self, ids: np.ndarray, mask: np.ndarray, task_id: int) -> dict[str, np.ndarray]:
        """The graph's inputs for one batch (``task_id`` < 0: a model without task adapters, whose graph has none)."""
        feeds = {"input_ids": ids, "attention_mask": mask}
        if task_id >= 0:
            feeds["task_id"] = np.array(task_id, dtype=np.int64)
        return feeds

    def _batches(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool
    ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        for task_id, batch in self._progress(self._plan(sequences, task_ids), show_progress):
            self._check_stop()
            ids, mask = self._padded(sequences, batch)
            lock, forward = self._lane_forward()
            with lock:
                hidden = forward(self._feeds(ids, mask, task_id))
            yield batch, hidden, mask

    def _lane_forward(self) -> tuple[threading.Lock, Forward]:
        """The lock and forward pass of this thread's lane: the main instance, or the express one beside it."""
        if not self._on_express_lane():
            return self._lock, self._graph.forward
        with self._express_lock:
            if self._express_forward is None:
                self._express_forward = self._graph.beside()
        return self._express_lock, self._express_forward
