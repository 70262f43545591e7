"""Core test helpers: the independent reference model (transformers' native model, task LoRA merged by hand)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import JinaEmbeddingsV3Config, JinaEmbeddingsV3Model


def merged_native_model(folder, task: str | None) -> JinaEmbeddingsV3Model:
    """Reference: original weights with ``W + 0.25 * B_t @ A_t`` (linear) / ``E + 0.25 * A_t @ B_t`` (embedding)."""
    cfg = json.loads((folder / "config.json").read_text())
    sd = {k.removeprefix("roberta."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
    t = None if task is None else cfg["lora_adaptations"].index(task)
    scale = cfg["lora_alpha"] / cfg["lora_rank"]

    def weight(name: str, embedding: bool = False) -> torch.Tensor:
        w = sd[f"{name}.parametrizations.weight.original"].clone()
        if t is not None:
            a, b = sd[f"{name}.parametrizations.weight.0.lora_A"][t], sd[f"{name}.parametrizations.weight.0.lora_B"][t]
            w += (a @ b if embedding else b @ a) * scale
        return w

    h = cfg["hidden_size"]
    native = {
        "embeddings.word_embeddings.weight": weight("embeddings.word_embeddings", True),
        "embeddings.token_type_embeddings.weight": weight("embeddings.token_type_embeddings", True),
        "embeddings.LayerNorm.weight": sd["emb_ln.weight"],
        "embeddings.LayerNorm.bias": sd["emb_ln.bias"],
    }
    for i in range(cfg["num_hidden_layers"]):
        p, q = f"encoder.layers.{i}", f"layers.{i}"
        wqkv, bqkv = weight(f"{p}.mixer.Wqkv"), sd[f"{p}.mixer.Wqkv.bias"]
        for j, n in enumerate("qkv"):
            native[f"{q}.self_attn.{n}_proj.weight"] = wqkv[j * h : (j + 1) * h]
            native[f"{q}.self_attn.{n}_proj.bias"] = bqkv[j * h : (j + 1) * h]
        native[f"{q}.self_attn.o_proj.weight"] = weight(f"{p}.mixer.out_proj")
        native[f"{q}.self_attn.o_proj.bias"] = sd[f"{p}.mixer.out_proj.bias"]
        for fc in ("fc1", "fc2"):
            native[f"{q}.mlp.{fc}.weight"] = weight(f"{p}.mlp.{fc}")
            native[f"{q}.mlp.{fc}.bias"] = sd[f"{p}.mlp.{fc}.bias"]
        for a, b in (("norm1", "post_attention_layernorm"), ("norm2", "post_mlp_layernorm")):
            native[f"{q}.{b}.weight"] = sd[f"{p}.{a}.weight"]
            native[f"{q}.{b}.bias"] = sd[f"{p}.{a}.bias"]
    config = JinaEmbeddingsV3Config(
        vocab_size=cfg["vocab_size"], hidden_size=h, num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"], intermediate_size=cfg["intermediate_size"],
        rope_parameters={"rope_type": "default", "rope_theta": cfg["rotary_emb_base"]},
    )
    config._attn_implementation = "eager"
    model = JinaEmbeddingsV3Model(config, add_pooling_layer=False).eval()
    model.pooler = None
    model.load_state_dict(native, strict=True)
    return model


@pytest.fixture(scope="session")
def native_model(tiny_checkpoint):
    """``native_model(task)``: the reference model for ``task`` (None = base weights), built once per task."""
    cache: dict = {}

    def get(task):
        if task not in cache:
            cache[task] = merged_native_model(tiny_checkpoint, task)
        return cache[task]

    return get
