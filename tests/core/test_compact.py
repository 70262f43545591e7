"""jinav3.compact: the bits are the core's binary encoding, int8 codes keep dot products in proportion, and a
rescored ranking is exactly the float ranking on its candidate set."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jinav3.compact import (
    Layout,
    binary_codes,
    bytes_per_vector,
    code_scores,
    hamming_distances,
    int8_codes,
    int8_scale,
    rescore,
    search,
    top_candidates,
)
from jinav3.errors import InvalidInputError
from jinav3.evaluation.ranking import unpack_bits
from jinav3.matryoshka import encode, truncate_normalise

finite = st.floats(-1.0, 1.0, width=32, allow_subnormal=False)


def unit_rows(draw: st.DrawFn, rows: int, width: int) -> np.ndarray:
    values = draw(arrays(np.float32, (rows, width), elements=finite))
    values[:, 0] += 2.0  # never all zero
    return truncate_normalise(values)


@st.composite
def corpus_and_queries(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    width = draw(st.integers(1, 40))
    return unit_rows(draw, draw(st.integers(1, 30)), width), unit_rows(draw, draw(st.integers(1, 4)), width)


@settings(max_examples=60, deadline=None)
@given(data=corpus_and_queries())
def test_bits_are_the_cores_binary_encoding_and_hamming_counts_them(data):
    corpus, queries = data
    codes = binary_codes(corpus)
    assert codes.dtype == np.uint8 and codes.shape == (len(corpus), -(-corpus.shape[1] // 8))
    np.testing.assert_array_equal(codes, encode(corpus, "ubinary"))
    np.testing.assert_array_equal(unpack_bits(codes)[:, :corpus.shape[1]], corpus > 0)
    expected = (unpack_bits(binary_codes(queries))[:, None, :] != unpack_bits(codes)[None, :, :]).sum(axis=-1)
    np.testing.assert_array_equal(hamming_distances(binary_codes(queries), codes), expected)


@settings(max_examples=60, deadline=None)
@given(data=corpus_and_queries(), seed=st.integers(0, 2**16))
def test_rescoring_gives_the_float_ranking_of_the_candidate_set(data, seed):
    corpus, queries = data
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, len(corpus) + 1))
    candidates = np.stack([rng.permutation(len(corpus))[:count] for _ in queries])
    ranked = rescore(queries, corpus, candidates)
    for query, picked, row in zip(queries, candidates, ranked, strict=True):
        assert sorted(row.tolist()) == sorted(picked.tolist())
        scores = corpus[row] @ query
        assert np.all(np.diff(scores) <= 1e-6)  # einsum and @ may round the last bit differently


@settings(max_examples=40, deadline=None)
@given(data=corpus_and_queries(), limit=st.integers(1, 5))
def test_oversampling_over_the_whole_corpus_is_the_float_ranking(data, limit):
    corpus, queries = data
    found = search(queries, corpus, binary_codes(queries), binary_codes(corpus), limit,
                   oversampling=len(corpus) / min(limit, len(corpus)))
    exact = top_candidates(queries @ corpus.T, limit)
    assert found.shape == exact.shape
    for query, hits, best in zip(queries, found, exact, strict=True):  # equal up to ties within rounding
        np.testing.assert_allclose(corpus[hits] @ query, corpus[best] @ query, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(data=corpus_and_queries(), limit=st.integers(1, 5), oversampling=st.floats(1.0, 4.0))
def test_the_rescored_hits_are_the_binary_candidates_in_float_order(data, limit, oversampling):
    corpus, queries = data
    codes, query_codes = binary_codes(corpus), binary_codes(queries)
    found = search(queries, corpus, query_codes, codes, limit, oversampling)
    candidates = top_candidates(-hamming_distances(query_codes, codes), int(np.ceil(limit * oversampling)))
    np.testing.assert_array_equal(found, rescore(queries, corpus, candidates)[:, :limit])
    alone = search(queries, corpus, query_codes, codes, limit)
    np.testing.assert_array_equal(alone, candidates[:, :limit])


@settings(max_examples=40, deadline=None)
@given(data=corpus_and_queries())
def test_int8_codes_round_within_half_a_step_and_share_one_scale(data):
    corpus, queries = data
    scale = int8_scale(corpus, quantile=1.0)
    codes = int8_codes(corpus, scale)
    assert codes.dtype == np.int8 and codes.shape == corpus.shape and np.abs(codes).max() <= 127
    assert np.abs(codes / scale - corpus).max() <= 0.5 / scale + 1e-6
    scores = code_scores(int8_codes(queries, scale), codes)
    np.testing.assert_array_equal(scores, int8_codes(queries, scale).astype(np.int64) @ codes.T.astype(np.int64))


def test_late_chunked_matryoshka_vectors_give_the_embedders_own_binary_output(tiny_embedder):
    text = "Berlin is big. It has a famous wall. The wall fell in 1989. Kyoto is old and has temples."
    chunks = tiny_embedder.late_chunk(text, chunker="sentences", task="retrieval.passage", dimensions=16)
    floats = np.stack([c.embedding for c in chunks])
    codes = binary_codes(floats)
    assert Layout.of(codes, 16) == Layout(16, "binary") and bytes_per_vector(16, "binary") == 2
    query = tiny_embedder.embed(["Which wall fell?"], "retrieval.query", 16)
    packed = tiny_embedder.embed(["Which wall fell?"], "retrieval.query", 16, embedding_type="ubinary")
    np.testing.assert_array_equal(binary_codes(query), packed)
    hits = search(query, floats, packed, codes, len(chunks), oversampling=1.0)[0]
    np.testing.assert_allclose(floats[hits] @ query[0], np.sort(floats @ query[0])[::-1], atol=1e-6)


def test_layouts_name_width_and_form_and_refuse_the_other():
    assert Layout.of(np.zeros((2, 48), np.uint8)) == Layout(384, "binary")
    assert Layout.of(np.zeros((2, 384), np.int8)) == Layout(384, "int8")
    assert Layout.of(np.zeros((2, 256), np.float32)) == Layout(256, "float")
    assert [bytes_per_vector(256, form) for form in ("float", "int8", "binary")] == [1024, 256, 32]
    with pytest.raises(InvalidInputError) as error:
        Layout(256, "binary").require(Layout(384, "float"))
    assert "binary codes of 256 dimensions (32 bytes each)" in str(error.value)
    assert "float vectors of 384 dimensions (1536 bytes each)" in str(error.value)
    with pytest.raises(InvalidInputError, match="unknown compact form 'fp16'"):
        Layout(8, "fp16")
    with pytest.raises(InvalidInputError, match="width must be a positive integer"):
        Layout(0, "float")
    with pytest.raises(InvalidInputError, match="cannot hold 17 dimensions"):
        Layout.of(np.zeros((1, 2), np.uint8), 17)
    with pytest.raises(InvalidInputError, match="queries are binary codes of 16 dimensions"):
        code_scores(np.zeros((1, 2), np.uint8), np.zeros((1, 16), np.int8))


def test_bad_values_are_refused_by_name():
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        binary_codes(np.array([[np.nan, 1.0]], np.float32))
    with pytest.raises(InvalidInputError, match="2-D array of float vectors"):
        binary_codes(np.zeros((2, 2), np.int8))
    with pytest.raises(InvalidInputError, match="positive finite"):
        int8_codes(np.ones((1, 2), np.float32), 0.0)
    with pytest.raises(InvalidInputError, match="all zero"):
        int8_scale(np.zeros((2, 3), np.float32))
    with pytest.raises(InvalidInputError, match="oversampling must be at least 1"):
        search(np.ones((1, 8), np.float32), np.ones((1, 8), np.float32), np.zeros((1, 1), np.uint8),
               np.zeros((1, 1), np.uint8), 1, oversampling=0.5)
