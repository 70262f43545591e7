"""Matryoshka: truncate first, then normalise; output encodings like the Jina API's embedding_type."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jinav3 import InvalidInputError
from jinav3.matryoshka import decode_base64, encode, float_path_encoding, truncate_normalise

from ..conftest import hamming_cosines


def test_truncate_then_normalise_order(tiny_embedder):
    raw = tiny_embedder.embed(["order matters"], "retrieval.passage", normalized=False)
    cut = tiny_embedder.embed(["order matters"], "retrieval.passage", dimensions=8)
    expected = raw[:, :8] / np.linalg.norm(raw[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-6)
    wrong_order = (raw / np.linalg.norm(raw, axis=1, keepdims=True))[:, :8]
    assert not np.allclose(np.linalg.norm(wrong_order, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-6)


def test_normalized_false_returns_raw_truncated(tiny_embedder):
    raw = tiny_embedder.embed(["x y z"], "separation", normalized=False)
    cut = tiny_embedder.embed(["x y z"], "separation", dimensions=5, normalized=False)
    np.testing.assert_allclose(cut, raw[:, :5], atol=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 33, 1025, 2.5, "64", True])
def test_bad_dimensions_are_rejected(tiny_embedder, bad):
    with pytest.raises(InvalidInputError, match="dimensions"):
        tiny_embedder.embed(["a"], "separation", dimensions=bad)


def test_binary_encodings_pack_sign_bits():
    v = np.array([[0.5, -1.0, 0.0, 2.0, -0.1, 0.3, 0.2, -0.2, 1.0]], dtype=np.float32)
    ubinary = encode(v, "ubinary")
    binary = encode(v, "binary")
    assert ubinary.dtype == np.uint8 and ubinary.shape == (1, 2)
    assert ubinary[0, 0] == 0b10010110 and ubinary[0, 1] == 0b10000000
    np.testing.assert_array_equal(binary.astype(np.int16) + 128, ubinary)
    assert binary.dtype == np.int8
    unpacked = np.unpackbits((binary.astype(np.int16) + 128).astype(np.uint8))[:9]
    np.testing.assert_array_equal(unpacked, (v[0] > 0).astype(np.uint8))


def test_base64_round_trip():
    v = truncate_normalise(np.random.default_rng(0).normal(size=(3, 16)))
    encoded = encode(v, "base64")
    assert isinstance(encoded, list) and all(isinstance(s, str) for s in encoded)
    np.testing.assert_array_equal(np.stack([decode_base64(s) for s in encoded]), v)


def test_embed_with_embedding_types(tiny_embedder):
    floats = tiny_embedder.embed(["a", "b"], "text-matching", dimensions=16)
    packed = tiny_embedder.embed(["a", "b"], "text-matching", dimensions=16, embedding_type="ubinary")
    np.testing.assert_array_equal(packed, np.packbits(floats > 0, axis=1))
    with pytest.raises(InvalidInputError, match="embedding_type"):
        tiny_embedder.embed(["a"], "text-matching", embedding_type="int4")


def test_binary_float_is_the_sign_bits_as_plus_minus_one():
    v = np.array([[0.5, -1.0, 0.0, 2.0, -0.1, 0.3, 0.2, -0.2, 1.0]], dtype=np.float32)
    signs = encode(v, "binary_float")
    assert signs.dtype == np.float32 and signs.shape == v.shape
    assert signs.tolist() == [[1.0, -1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0]]  # 0.0 is bit 0, like packbits
    np.testing.assert_array_equal(np.packbits(signs > 0, axis=1), encode(v, "ubinary"))


def test_a_framework_float_path_never_gets_packed_bytes():
    assert [float_path_encoding(t) for t in ("float", "binary", "ubinary", "binary_float")] == [
        "float", "binary_float", "binary_float", "binary_float"]
    with pytest.raises(InvalidInputError, match="'base64' cannot be a framework's list of floats; use 'float'"):
        float_path_encoding("base64")


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(1, 40), st.integers(1, 12))
def test_cosine_over_binary_float_ranks_like_hamming_over_packed_bits(data, width, n):
    values = st.floats(-1, 1, width=32, allow_subnormal=False)
    docs = data.draw(arrays(np.float32, (n, width), elements=values))
    query = data.draw(arrays(np.float32, (1, width), elements=values))
    signs_d, signs_q = encode(docs, "binary_float"), encode(query, "binary_float")
    cosine = (signs_d @ signs_q[0]) / (np.linalg.norm(signs_d, axis=1) * np.linalg.norm(signs_q[0]))
    expected = np.array(hamming_cosines(encode(query, "ubinary")[0].tobytes(),
                                        [row.tobytes() for row in encode(docs, "ubinary")], width))
    np.testing.assert_allclose(cosine, expected, atol=1e-6)
    # ties included: texts at equal Hamming distance get bit-equal cosines, so both orders agree exactly
    assert np.argsort(-cosine, kind="stable").tolist() == np.argsort(-expected, kind="stable").tolist()
