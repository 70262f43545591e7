"""Find a checkpoint and load it into transformers' native ``JinaEmbeddingsV3Model`` (no remote code).

The published jina-embeddings-v3 repository keeps the original training layout: ``roberta.*`` keys, a fused
``Wqkv`` projection and, for every Linear and Embedding, ``parametrizations.weight.original`` plus a LoRA bank
``parametrizations.weight.0.lora_A/lora_B`` with one slice per task. We split and rename the base weights into the
native model and wrap the adapted modules with :mod:`jinav3.lora`. Any other folder is loaded as a plain
Hugging Face encoder (used with mean pooling, no tasks).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from jinav3.errors import ModelLoadError
from jinav3.lora import LoRAEmbedding, LoRALinear, TaskSelection
from jinav3.tasks import DEFAULT_INSTRUCTIONS

DEFAULT_MODEL = "jinaai/jina-embeddings-v3"
_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]


def resolve_model_dir(model: str | os.PathLike[str]) -> Path:
    """A local folder as is; otherwise a hub repo id fetched (or read from cache) by ``huggingface_hub``.

    ``HF_HUB_OFFLINE=1`` and the usual cache variables are honoured by ``snapshot_download`` itself.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(model).startswith((".", "/", "~")):
        raise ModelLoadError(f"model folder {str(model)!r} does not exist or is not a folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model), allow_patterns=_HUB_FILES))
    except Exception as exc:  # the hub raises many types (offline, 404, gated, network)
        raise ModelLoadError(
            f"could not load {str(model)!r} from the Hugging Face hub or its cache ({type(exc).__name__}: {exc}). "
            "Pass a local folder, or run once with internet access to fill the cache."
        ) from exc


@dataclass
class LoadedModel:
    """What the local backend needs from a checkpoint."""

    module: nn.Module
    selection: TaskSelection | None  # None for plain encoders (no task adapters)
    tasks: tuple[str, ...]
    instructions: dict[str, str] = field(default_factory=dict)
    hidden_size: int = 0
    max_positions: int | None = None  # usable sequence length of learned positions; None for rotary models


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} has no config.json; is it a Hugging Face model folder?") from None


def is_jina_v3_original(config: dict) -> bool:
    return bool(config.get("lora_adaptations")) and config.get("position_embedding_type") == "rotary"


def load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder} has no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return {k.removeprefix("roberta."): v for k, v in state.items()}


def _take(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    try:
        return state.pop(key)
    except KeyError:
        raise ModelLoadError(f"checkpoint is missing {key!r}; not the jina-embeddings-v3 layout?") from None


def load_jina_v3(
    folder: Path,
    config: dict,
    dtype: torch.dtype,
    device: torch.device,
    attn_implementation: str,
    merge_lora: bool = True,
) -> LoadedModel:
    """Build the native model from the original (LoRA-parametrised) checkpoint."""
    from transformers import JinaEmbeddingsV3Config, JinaEmbeddingsV3Model
    from transformers.models.jina_embeddings_v3.modeling_jina_embeddings_v3 import (
        JinaEmbeddingsV3RotaryEmbedding,
    )

    tasks = tuple(config["lora_adaptations"])
    scale = float(config.get("lora_alpha", 1)) / float(config.get("lora_rank", 4))
    native = JinaEmbeddingsV3Config(
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"],
        hidden_act=config.get("hidden_act", "gelu"),
        layer_norm_eps=config.get("layer_norm_eps", 1e-5),
        type_vocab_size=config.get("type_vocab_size", 1),
        pad_token_id=config.get("pad_token_id", 1),
        bos_token_id=config.get("bos_token_id", 0),
        eos_token_id=config.get("eos_token_id", 2),
        max_position_embeddings=config.get("max_position_embeddings", 8194),
        rope_parameters={"rope_type": "default", "rope_theta": float(config.get("rotary_emb_base", 20000.0))},
    )
    native._attn_implementation = attn_implementation
    state = load_state_dict(folder)
    hidden = native.hidden_size

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype)

    base: dict[str, torch.Tensor] = {}
    banks: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def param(src: str, dst: str, bias: bool = True) -> None:
        base[f"{dst}.weight"] = _take(state, f"{src}.parametrizations.weight.original")
        banks[dst] = (
            _take(state, f"{src}.parametrizations.weight.0.lora_A"),
            _take(state, f"{src}.parametrizations.weight.0.lora_B"),
        )
        if bias:
            base[f"{dst}.bias"] = _take(state, f"{src}.bias")

    param("embeddings.word_embeddings", "embeddings.word_embeddings", bias=False)
    param("embeddings.token_type_embeddings", "embeddings.token_type_embeddings", bias=False)
    base["embeddings.LayerNorm.weight"] = _take(state, "emb_ln.weight")
    base["embeddings.LayerNorm.bias"] = _take(state, "emb_ln.bias")
    for i in range(native.num_hidden_layers):
        src, dst = f"encoder.layers.{i}", f"layers.{i}"
        wqkv = _take(state, f"{src}.mixer.Wqkv.parametrizations.weight.original")
        bqkv = _take(state, f"{src}.mixer.Wqkv.bias")
        a = _take(state, f"{src}.mixer.Wqkv.parametrizations.weight.0.lora_A")
        b = _take(state, f"{src}.mixer.Wqkv.parametrizations.weight.0.lora_B")
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            rows = slice(j * hidden, (j + 1) * hidden)
            base[f"{dst}.self_attn.{name}.weight"] = wqkv[rows]
            base[f"{dst}.self_attn.{name}.bias"] = bqkv[rows]
            banks[f"{dst}.self_attn.{name}"] = (a, b[:, rows])
        param(f"{src}.mixer.out_proj", f"{dst}.self_attn.o_proj")
        param(f"{src}.mlp.fc1", f"{dst}.mlp.fc1")
        param(f"{src}.mlp.fc2", f"{dst}.mlp.fc2")
        for norm, native_norm in (("norm1", "post_attention_layernorm"), ("norm2", "post_mlp_layernorm")):
            base[f"{dst}.{native_norm}.weight"] = _take(state, f"{src}.{norm}.weight")
            base[f"{dst}.{native_norm}.bias"] = _take(state, f"{src}.{norm}.bias")
    leftover = [k for k in state if not k.startswith("pooler.")]
    if leftover:
        raise ModelLoadError(f"unexpected weights in checkpoint: {leftover[:5]}")

    with torch.device("meta"):
        module = JinaEmbeddingsV3Model(native)
    module.pooler = None
    module.load_state_dict({k: cast(v) for k, v in base.items()}, strict=True, assign=True)
    module.rotary_emb = JinaEmbeddingsV3RotaryEmbedding(native).to(device)

    selection = TaskSelection()
    for name, (lora_a, lora_b) in banks.items():
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        original = getattr(parent, child)
        if isinstance(original, nn.Embedding):
            wrapped: nn.Module = LoRAEmbedding(original, cast(lora_a), cast(lora_b), scale, selection)
        else:
            wrapped = LoRALinear(original, cast(lora_a), cast(lora_b), scale, selection, merge=merge_lora)
        setattr(parent, child, wrapped)
    module.eval().requires_grad_(False)
    instructions = {**DEFAULT_INSTRUCTIONS, **(config.get("task_instructions") or {})}
    return LoadedModel(module, selection, tasks, instructions, hidden_size=hidden)


def load_plain_encoder(folder: Path, dtype: torch.dtype, device: torch.device, attn_implementation: str) -> LoadedModel:
    """Any Hugging Face encoder (BERT, XLM-R, ...), used with mean pooling and no task adapters."""
    from transformers import AutoModel

    try:
        module = AutoModel.from_pretrained(str(folder), dtype=dtype, attn_implementation=attn_implementation)
    except (ValueError, ImportError):  # model class without SDPA/FlashAttention support
        module = AutoModel.from_pretrained(str(folder), dtype=dtype, attn_implementation="eager")
    except OSError as exc:
        raise ModelLoadError(f"could not load the encoder in {folder}: {exc}") from exc
    module.to(device).eval().requires_grad_(False)
    cfg = module.config
    positions = getattr(cfg, "max_position_embeddings", None)
    if getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        positions = None
    elif positions and cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2  # RoBERTa-style position ids start after the padding index
    st_config = folder / "sentence_bert_config.json"  # sentence-transformers models say how long they were trained
    if st_config.exists():
        trained = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        if trained and (positions is None or trained < positions):
            positions = int(trained)
    return LoadedModel(module, None, (), {}, hidden_size=cfg.hidden_size, max_positions=positions)
