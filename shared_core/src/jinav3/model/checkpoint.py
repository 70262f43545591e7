"""Find a checkpoint and load it into transformers' native ``JinaEmbeddingsV3Model`` (no remote code).

The published jina-embeddings-v3 repository keeps the original training layout: ``roberta.*`` keys, a fused
``Wqkv`` projection and, for every Linear and Embedding, ``parametrizations.weight.original`` plus a LoRA bank
``parametrizations.weight.0.lora_A/lora_B`` with one slice per task. We split and rename the base weights into the
native model and wrap the adapted modules with :mod:`jinav3.model.lora`. Any other folder is loaded as a plain
Hugging Face encoder (used with mean pooling, no tasks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from jinav3.errors import ModelLoadError
from jinav3.model.files import (  # re-exported: older imports name them here
    DEFAULT_MODEL,
    encoder_max_positions,
    is_jina_v3_original,
    read_config,
    resolve_model_dir,
    task_instructions,
)
from jinav3.model.lora import LoRAEmbedding, LoRALinear, TaskSelection

__all__ = ["DEFAULT_MODEL", "LoadedModel", "is_jina_v3_original", "load_jina_v3", "load_plain_encoder",
           "read_config", "resolve_model_dir"]


@dataclass
class LoadedModel:
    """What the local backend needs from a checkpoint."""

    module: nn.Module
    selection: TaskSelection | None  # None for plain encoders (no task adapters)
    tasks: tuple[str, ...]
    instructions: dict[str, str] = field(default_factory=dict)
    hidden_size: int = 0
    max_positions: int | None = None  # usable sequence length of learned positions; None for rotary models


def load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder} has no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return {k.removeprefix("roberta."): v for k, v in state.items()}


def _take(state: dict[str, torch.Tensor], key: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Pop ``key``, checking its shape when given: a wrong checkpoint fails here, naming the tensor."""
    try:
        tensor = state.pop(key)
    except KeyError:
        raise ModelLoadError(f"checkpoint is missing {key!r}; not the jina-embeddings-v3 layout?") from None
    if shape is not None and tuple(tensor.shape) != shape:
        raise ModelLoadError(f"checkpoint tensor {key!r} has shape {tuple(tensor.shape)}, expected {shape}")
    return tensor


def _config_int(config: dict, key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(f"config.json: {key!r} must be a positive integer, got {value!r}")
    return value


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
    n_tasks, rank = len(tasks), _config_int(config, "lora_rank", 4)
    scale = float(config.get("lora_alpha", 1)) / float(rank)
    native = JinaEmbeddingsV3Config(
        vocab_size=_config_int(config, "vocab_size"),
        hidden_size=_config_int(config, "hidden_size"),
        num_hidden_layers=_config_int(config, "num_hidden_layers"),
        num_attention_heads=_config_int(config, "num_attention_heads"),
        intermediate_size=_config_int(config, "intermediate_size"),
        hidden_act=config.get("hidden_act", "gelu"),
        layer_norm_eps=config.get("layer_norm_eps", 1e-5),
        type_vocab_size=_config_int(config, "type_vocab_size", 1),
        pad_token_id=config.get("pad_token_id", 1),
        bos_token_id=config.get("bos_token_id", 0),
        eos_token_id=config.get("eos_token_id", 2),
        max_position_embeddings=config.get("max_position_embeddings", 8194),
        rope_parameters={"rope_type": "default", "rope_theta": float(config.get("rotary_emb_base", 20000.0))},
    )
    native._attn_implementation = attn_implementation
    if native.hidden_size % native.num_attention_heads:
        raise ModelLoadError(
            f"config.json: hidden_size {native.hidden_size} is not a multiple of "
            f"num_attention_heads {native.num_attention_heads}"
        )
    with torch.device("meta"):
        module = JinaEmbeddingsV3Model(native)
    module.pooler = None
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    state = load_state_dict(folder)
    hidden = native.hidden_size

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype)

    base: dict[str, torch.Tensor] = {}
    banks: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def bank(src: str, rows: int, cols: int, embedding: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """LoRA factors of a (rows x cols) weight: Linear A (T, r, in), B (T, out, r); Embedding A (T, V, r),
        B (T, r, d). T must be the number of tasks in the config, r its ``lora_rank``."""
        if embedding:
            a_shape, b_shape = (n_tasks, rows, rank), (n_tasks, rank, cols)
        else:
            a_shape, b_shape = (n_tasks, rank, cols), (n_tasks, rows, rank)
        return (
            _take(state, f"{src}.parametrizations.weight.0.lora_A", a_shape),
            _take(state, f"{src}.parametrizations.weight.0.lora_B", b_shape),
        )

    def param(src: str, dst: str, bias: bool = True, embedding: bool = False) -> None:
        shape = expected[f"{dst}.weight"]
        base[f"{dst}.weight"] = _take(state, f"{src}.parametrizations.weight.original", shape)
        banks[dst] = bank(src, shape[0], shape[1], embedding)
        if bias:
            base[f"{dst}.bias"] = _take(state, f"{src}.bias", expected[f"{dst}.bias"])

    def norm(src: str, dst: str) -> None:
        for kind in ("weight", "bias"):
            base[f"{dst}.{kind}"] = _take(state, f"{src}.{kind}", expected[f"{dst}.{kind}"])

    param("embeddings.word_embeddings", "embeddings.word_embeddings", bias=False, embedding=True)
    param("embeddings.token_type_embeddings", "embeddings.token_type_embeddings", bias=False, embedding=True)
    norm("emb_ln", "embeddings.LayerNorm")
    for i in range(native.num_hidden_layers):
        src, dst = f"encoder.layers.{i}", f"layers.{i}"
        wqkv = _take(state, f"{src}.mixer.Wqkv.parametrizations.weight.original", (3 * hidden, hidden))
        bqkv = _take(state, f"{src}.mixer.Wqkv.bias", (3 * hidden,))
        a, b = bank(f"{src}.mixer.Wqkv", 3 * hidden, hidden, embedding=False)
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            rows = slice(j * hidden, (j + 1) * hidden)
            base[f"{dst}.self_attn.{name}.weight"] = wqkv[rows]
            base[f"{dst}.self_attn.{name}.bias"] = bqkv[rows]
            banks[f"{dst}.self_attn.{name}"] = (a, b[:, rows])
        param(f"{src}.mixer.out_proj", f"{dst}.self_attn.o_proj")
        param(f"{src}.mlp.fc1", f"{dst}.mlp.fc1")
        param(f"{src}.mlp.fc2", f"{dst}.mlp.fc2")
        norm(f"{src}.norm1", f"{dst}.post_attention_layernorm")
        norm(f"{src}.norm2", f"{dst}.post_mlp_layernorm")
    leftover = [k for k in state if not k.startswith("pooler.")]
    if leftover:
        raise ModelLoadError(f"unexpected weights in checkpoint: {leftover[:5]}")

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
    return LoadedModel(module, selection, tasks, task_instructions(config), hidden_size=hidden)


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
    positions = encoder_max_positions(folder, cfg.to_dict())
    return LoadedModel(module, None, (), {}, hidden_size=cfg.hidden_size, max_positions=positions)
