"""A tokenizer is refused for what really breaks the model (ordinary text giving ids beyond the embedding table,
near-empty vocabularies), not for special tokens beyond the table that text never produces (EmbeddingGemma's
tokenizer has 262,145 entries for 262,144 rows)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models

from jinav3 import Embedder, InvalidInputError, ModelLoadError
from jinav3.model.files import TOKENIZER_PROBE, check_tokenizer_fits
from jinav3.testing import build_checkpoint, same_vectors, train_tokenizer

TEXTS = ["Berlin is the capital of Germany.", "東京は日本の首都です。", "Москва — столица России."]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("fit"), layers=1)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(600)


def test_extra_special_tokens_beyond_the_table_load_and_change_nothing(source, tmp_path):
    folder = tmp_path / "extra"
    shutil.copytree(source, folder)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = json.loads((folder / "config.json").read_text())["vocab_size"]
    assert tokenizer.get_vocab_size() == rows
    tokenizer.add_special_tokens(["<image_soft_token>"])  # one entry more than the table, as in EmbeddingGemma
    tokenizer.save(str(folder / "tokenizer.json"))
    assert Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size() == rows + 1
    extra = Embedder.local(str(folder), device="cpu", dtype="float32")
    plain = Embedder.local(str(source), device="cpu", dtype="float32")
    assert same_vectors(extra.embed(TEXTS), plain.embed(TEXTS))
    with pytest.raises(InvalidInputError, match=r"input 1 contains the token '<image_soft_token>' .* rows"):
        extra.embed(["fine", "a text naming <image_soft_token> literally"])
    with pytest.raises(InvalidInputError, match="<image_soft_token>"):
        extra.late_chunk("One sentence. Then <image_soft_token> in the second.")


def test_a_table_smaller_than_what_ordinary_text_produces_is_refused(tmp_path):
    folder = build_checkpoint(tmp_path / "small", layers=1, vocab_size=150)
    entries = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()
    assert entries > 150
    sizes = rf"token ids up to \d+ .* embedding table has 150 rows .* {entries} entries"
    with pytest.raises(ModelLoadError, match=sizes):
        Embedder.local(str(folder), device="cpu")


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(min_value=1, max_value=400), extra=st.integers(min_value=0, max_value=4))
def test_the_rule_is_the_largest_id_of_ordinary_text(tokenizer, rows, extra):
    """Independent computation: the largest id the probe text gets, with extra special tokens added on top."""
    grown = Tokenizer.from_str(tokenizer.to_str())
    grown.add_special_tokens([f"<extra_{i}>" for i in range(extra)])
    needed = max(tokenizer.encode(TOKENIZER_PROBE).ids) + 1
    if rows >= needed:
        check_tokenizer_fits(grown, rows, Path("model"))  # accepted, whatever the special tokens beyond
    else:
        with pytest.raises(ModelLoadError, match=f"embedding table has {rows} rows"):
            check_tokenizer_fits(grown, rows, Path("model"))


def test_a_near_empty_tokenizer_is_refused_even_without_a_known_table(tokenizer):
    empty = Tokenizer.from_str(tokenizer.to_str())
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    empty.model = models.WordLevel(vocab, unk_token="<unk>")
    with pytest.raises(ModelLoadError, match=r"only 5 entries .* missing or broken"):
        check_tokenizer_fits(empty, 0, Path("model"))
