"""Broken checkpoints are refused at load with ModelLoadError naming the file or tensor — never a silent model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from jinav3 import Embedder, InvalidInputError, ModelLoadError
from jinav3.testing import build_checkpoint


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("good"), layers=1)


def copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(source, target)
    return target


def edit_weights(folder: Path, change) -> None:
    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))


def test_missing_tokenizer_is_refused(source, tmp_path):
    folder = copy(source, tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no tokenizer\.json"):
        Embedder.local(str(folder), device="cpu")


def test_a_tokenizer_far_smaller_than_the_vocabulary_is_refused(minilm_dir, tmp_path):
    """A plain encoder whose tokenizer files are gone (transformers would build a near-empty one)."""
    folder = tmp_path / "minilm"
    shutil.copytree(minilm_dir, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    tokenizer["model"]["vocab"] = {k: v for k, v in vocab.items() if v < 5}
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t["id"] < 5]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ModelLoadError, match="missing or broken"):
        Embedder.local(str(folder), device="cpu")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    module=st.sampled_from(["embeddings.word_embeddings", "encoder.layers.0.mixer.Wqkv",
                            "encoder.layers.0.mixer.out_proj", "encoder.layers.0.mlp.fc1"]),
    part=st.sampled_from(["lora_A", "lora_B", "original"]),
    damage=st.sampled_from(["drop_task", "transpose", "grow"]),
)
def test_damaged_lora_banks_and_base_weights_are_named(source, tmp_path_factory, module, part, damage):
    folder = copy(source, tmp_path_factory.mktemp("bad"))
    key = f"roberta.{module}.parametrizations.weight." + ("original" if part == "original" else f"0.{part}")

    def damaged(t: torch.Tensor) -> torch.Tensor:
        if damage == "drop_task":
            return t[:-1].contiguous()
        if damage == "transpose":
            return t.transpose(-1, -2).contiguous()
        return torch.cat([t, t[..., :1]], dim=-1).contiguous()

    original = load_file(str(source / "model.safetensors"))[key]
    assume(damaged(original).shape != original.shape)  # a transposed square weight is undetectable by shape
    edit_weights(folder, lambda state: state.__setitem__(key, damaged(state[key])))
    with pytest.raises(ModelLoadError, match=rf"{module.removeprefix('roberta.')}.*has shape .* expected"):
        Embedder.local(str(folder), device="cpu")


def test_config_listing_more_tasks_than_the_banks_is_refused(source, tmp_path):
    folder = copy(source, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["lora_adaptations"] = [*config["lora_adaptations"], "extra-task"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"lora_A.*expected \(6,"):
        Embedder.local(str(folder), device="cpu")


def test_hidden_size_mismatch_is_refused(source, tmp_path):
    folder = copy(source, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 48
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="has shape"):
        Embedder.local(str(folder), device="cpu")


def test_window_and_overlap_are_checked(tiny_embedder):
    doc = "Berlin is the capital of Germany. Paris is a city in France."
    for kwargs, message in (({"window": 0}, "window"), ({"overlap": -1}, "overlap"),
                            ({"window": 64, "overlap": 64}, "overlap")):
        with pytest.raises(InvalidInputError, match=message):
            tiny_embedder.late_chunk(doc, **kwargs)


@pytest.mark.parametrize("span", [(0.9, 14.7), (True, 5), ("0", "5"), (0, 5, 7), 3])
def test_spans_must_be_integer_pairs(tiny_embedder, span):
    with pytest.raises(InvalidInputError, match="pair of ints"):
        tiny_embedder.late_chunk("Berlin is the capital of Germany.", spans=[span])


def test_shared_treats_the_default_model_and_none_alike(tiny_checkpoint, monkeypatch):
    from jinav3 import embedder as embedder_module

    monkeypatch.setitem(embedder_module.DEFAULT_MODELS, "local", str(tiny_checkpoint))
    a = Embedder.shared("local", None, device="cpu")
    assert Embedder.shared("local", str(tiny_checkpoint), device="cpu") is a
