"""A long text tokenised in pieces gives exactly the tokens of one pass (ids, offsets, special tokens), for the
tiny jina-layout tokenizer and the real MiniLM WordPiece one, whatever the text."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from jinav3.late_chunking import tokenizing
from jinav3.testing import CORPUS

WORDS = st.sampled_from(["Berlin", "wall", "C.", "albicans", "3.14", "東京は首都です。", "😀", "e\u0301t\u00e9", "!=",
                         "\n", "\n\n", "  ", "\t", "supercalifragilistic" * 3, "x"])


@pytest.fixture(scope="module")
def tokenizers_under_test(tiny_checkpoint, minilm_dir) -> list[Tokenizer]:
    found = [Tokenizer.from_file(str(folder / "tokenizer.json")) for folder in (tiny_checkpoint, minilm_dir)]
    for tokenizer in found:  # as jinav3 loads them: MiniLM's file asks for truncation to 128 tokens and padding
        tokenizer.no_truncation()
        tokenizer.no_padding()
    return found


@pytest.fixture(scope="module")
def small_pieces() -> Iterator[None]:
    """Pieces of 64 characters overlapping by 48, so short texts are cut many times (the same for every example).
    Pieces are brought in step at a word start within half the overlap past the cut, so the corpus's longest
    unspaced run (a CJK sentence is one word to a Metaspace tokenizer) must fit in 24 characters."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenizing, "PIECE_CHARS", 64)
        patch.setattr(tokenizing, "OVERLAP_CHARS", 48)
        yield


def one_pass(tokenizer: Tokenizer, text: str) -> tuple[np.ndarray, ...]:
    enc = tokenizer.encode(text)
    return (np.asarray(enc.ids), np.asarray(enc.offsets).reshape(-1, 2), np.asarray(enc.special_tokens_mask, bool))


@settings(max_examples=40, deadline=None)
@given(words=st.lists(WORDS, min_size=1, max_size=120), seps=st.lists(st.sampled_from([" ", "", "\n"]), min_size=120,
                                                                       max_size=120))
# A 102-character word across a cut: one pass gives MiniLM's WordPiece one [UNK] (over 100 characters), while each
# piece saw 99 characters of it, tokenised them into word pieces, and the two agreed past the cut.
@example(words=["Berlin", "walls", "supercalifragilistic" * 5 + "xy"] + ["wall"] * 30, seps=[" "] * 120)
def test_pieces_give_the_tokens_of_one_pass(tokenizers_under_test, small_pieces, words, seps):
    text = "".join(w + s for w, s in zip(words, seps, strict=False))
    for tokenizer in tokenizers_under_test:
        got = tokenizing.encode(tokenizer, text)
        for a, b in zip(got, one_pass(tokenizer, text), strict=True):
            np.testing.assert_array_equal(a, b)


def test_prose_is_brought_in_step_without_falling_back(tokenizers_under_test, small_pieces):
    text = " ".join(CORPUS) * 3
    for tokenizer in tokenizers_under_test:
        pieced = tokenizing._in_pieces(tokenizer, text)
        assert pieced is not None
        for a, b in zip(pieced, one_pass(tokenizer, text), strict=True):
            np.testing.assert_array_equal(a, b)
