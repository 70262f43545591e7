"""Write a checkpoint the torch engine loads as the official ONNX layout (``jinav3 export-onnx``; needs torch).

The published jina-embeddings-v3 repository ships ``onnx/model.onnx`` with its weights in ``onnx/model.onnx_data``:
inputs ``input_ids`` and ``attention_mask`` (int64, batch x length) and a scalar int64 ``task_id`` (0
``retrieval.query`` ... 4 ``text-matching``) that picks the LoRA inside the graph; first output ``text_embeds``, the
token hidden states (batch x length x hidden). This module writes the same layout from any checkpoint, so the ONNX
engine (:mod:`jinav3.backends.onnx_engine`) runs fine-tuned and tiny test models, not only the hub file.

Task adapters are exported unmerged, ``x W^T + b + s (x A_t^T) B_t^T``, with ``A_t``/``B_t`` gathered by
``task_id``: the base weights stay constants of the graph, so whole-graph int8 quantisation reaches them. Plain
encoders (MiniLM, BERT, XLM-R without adapters) have no tasks: their graph has no ``task_id`` input at all (an input
that changes nothing would only invite the belief that it does); the engine feeds ``task_id`` only to graphs that
declare it.

Attention is traced from transformers' eager implementation (MatMul, scale, additive mask, Softmax, MatMul), not
from its SDPA one: torch exports SDPA with NaN guards (IsNaN, Select) around the softmax, which keep OpenVINO's CPU
plugin from fusing attention into one kernel and cost ONNX Runtime time too. Both read the eager pattern faster
(docs/performance.md, "the exported graph"); the vectors are the same within float rounding.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn
from torch.nn import functional as F

from jinav3.errors import InvalidInputError
from jinav3.model.checkpoint import load_jina_v3, load_plain_encoder
from jinav3.model.files import is_jina_v3_original, read_config, resolve_model_dir
from jinav3.model.lora import LoRAEmbedding, LoRALinear

#: Where the graph and its external weights live inside a model folder (the hub repository's names).
GRAPH_FILE = "onnx/model.onnx"
DATA_FILE = "model.onnx_data"  # next to the graph
OUTPUT_NAME = "text_embeds"
_OPSET = 17
# Files that let the exported folder load on its own (tokenizer, config, sentence-transformers settings).
_CARRIED = ("*.json", "*.txt", "*.model")
#: The attention implementation traced (see the module docstring); "sdpa" only to measure the choice again
#: (benchmarks/bench_graph_choices.py).
ATTENTION = "eager"


class _TaskId:
    """The graph's ``task_id`` input while tracing, shared by every adapted module."""

    def __init__(self) -> None:
        self.value = torch.zeros((), dtype=torch.long)


class _GraphLoRA(nn.Module):
    """A LoRA module whose task comes from the graph input (unmerged, so the base weight stays a constant)."""

    def __init__(self, lora: LoRALinear | LoRAEmbedding, task: _TaskId) -> None:
        super().__init__()
        self.base, self.scale = lora.base, lora.scale
        # Parameters, not the LoRA module's buffers: the exporter writes a module's plain tensors as Constant nodes
        # inside the graph file (the word embeddings' bank alone is 20 MB on jina-v3), parameters as initialisers,
        # which go to model.onnx_data like every other weight.
        self.lora_a = nn.Parameter(lora.lora_a, requires_grad=False)
        self.lora_b = nn.Parameter(lora.lora_b, requires_grad=False)
        self.task = task

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This call's task slice of the A and B banks (a Gather on ``task_id`` in the graph)."""
        index = self.task.value.reshape(1)
        return torch.index_select(self.lora_a, 0, index)[0], torch.index_select(self.lora_b, 0, index)[0]


class _GraphLoRALinear(_GraphLoRA):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.factors()
        return self.base(x) + F.linear(F.linear(x, a), b) * self.scale


class _GraphLoRAEmbedding(_GraphLoRA):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        a, b = self.factors()
        return self.base(ids) + torch.matmul(F.embedding(ids, a), b) * self.scale


class _TaskGraph(nn.Module):
    """``(input_ids, attention_mask, task_id) -> token hidden states`` of a jina-v3 model with its adapters."""

    def __init__(self, module: nn.Module, task: _TaskId) -> None:
        super().__init__()
        self.module, self.task = module, task

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        self.task.value = task_id
        return self.module(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class _PlainGraph(nn.Module):
    """``(input_ids, attention_mask) -> token hidden states`` of an encoder without task adapters."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.module(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _swap_adapters(module: nn.Module, task: _TaskId) -> None:
    for name, child in list(module.named_modules()):
        if isinstance(child, LoRALinear | LoRAEmbedding):
            parent_name, _, attribute = name.rpartition(".")
            graph_module = _GraphLoRALinear if isinstance(child, LoRALinear) else _GraphLoRAEmbedding
            setattr(module.get_submodule(parent_name), attribute, graph_module(child, task))


def _example_inputs(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows, the second padded: tracing with an all-ones mask would let the model drop the mask from the graph."""
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 5, 6, 2, 1, 1, 1]], dtype=torch.long) % vocab_size
    mask = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]], dtype=torch.long)
    return ids, mask


def export_onnx(
    checkpoint: str | Path, out: str | Path, *, overwrite: bool = False, attention: str = ATTENTION
) -> Path:
    """Export ``checkpoint`` (folder or hub id) to ``out`` (a new folder); returns the graph's path. ``attention``:
    transformers' attention implementation to trace (see the module docstring for why eager)."""
    source = resolve_model_dir(checkpoint)
    target = Path(out)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise InvalidInputError(f"{target} exists and is not empty; choose a new folder or pass overwrite=True")
    config = read_config(source)
    cpu, fp32 = torch.device("cpu"), torch.float32
    names = ["input_ids", "attention_mask"]
    if is_jina_v3_original(config):
        loaded = load_jina_v3(source, config, fp32, cpu, attention, merge_lora=False)
        task = _TaskId()
        _swap_adapters(loaded.module, task)
        graph: nn.Module = _TaskGraph(loaded.module, task)
        names.append("task_id")
        vocab = int(config["vocab_size"])
    else:
        loaded = load_plain_encoder(source, fp32, cpu, attention)
        graph = _PlainGraph(loaded.module)
        vocab = int(loaded.module.config.vocab_size)
    ids, mask = _example_inputs(vocab)
    example = (ids, mask, torch.tensor(1, dtype=torch.long))[: len(names)]
    dynamic = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", OUTPUT_NAME)}
    target.mkdir(parents=True, exist_ok=True)
    for pattern in _CARRIED:
        for file in source.glob(pattern):
            shutil.copy2(file, target / file.name)
    graph_path = target / GRAPH_FILE
    graph_path.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=graph_path.parent) as staging:
        traced = Path(staging) / "traced.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's warnings are about Python branches fixed for every input
            torch.onnx.export(graph.eval(), example, str(traced), input_names=names, output_names=[OUTPUT_NAME],
                              dynamic_axes=dynamic, opset_version=_OPSET, dynamo=False)
        save_with_external_data(onnx.load(str(traced)), graph_path)
    return graph_path


def save_with_external_data(model: Any, graph_path: Path) -> None:
    """Write ``model`` with every weight in one ``model.onnx_data`` file beside the graph (the hub's layout)."""
    for stale in (graph_path, graph_path.parent / DATA_FILE):
        stale.unlink(missing_ok=True)
    onnx.save_model(model, str(graph_path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=DATA_FILE, size_threshold=0)
    (graph_path.parent / DATA_FILE).chmod(graph_path.stat().st_mode & 0o777)  # onnx writes it owner-only
