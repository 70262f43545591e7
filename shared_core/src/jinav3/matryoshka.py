"""Matryoshka (MRL) dimensions and output encodings: truncate first, then L2-normalise, then encode.

The order matters: normalising before truncation leaves shorter vectors with norms below one (model card fix #60).
"""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np

from jinav3.errors import InvalidInputError

#: Sizes the model was trained for; any size from 1 to the full width works, these are the ones that keep quality.
TRAINED_DIMENSIONS: tuple[int, ...] = (32, 64, 128, 256, 512, 768, 1024)

EmbeddingType = Literal["float", "binary", "ubinary", "base64", "binary_float"]
#: The Jina API's four encodings, plus ``binary_float``: the sign bits of ``binary`` as ±1.0 floats of the full
#: width, for frameworks whose stores take floats only (cosine or dot product over them ranks as Hamming distance).
EMBEDDING_TYPES: tuple[str, ...] = ("float", "binary", "ubinary", "base64", "binary_float")

#: Encodings of sign bits: what a user of a framework asks for when they want binary vectors.
BINARY_TYPES: tuple[str, ...] = ("binary", "ubinary")


def check_dimensions(dimensions: object) -> int | None:
    """``dimensions`` (None stays None) checked before the model's width is known: the one rule of every entry
    point (core, adapters, CLI) is an ``int`` (or numpy integer) of at least 1, or None. Strings such as ``"256"``,
    floats and booleans are refused rather than converted."""
    if dimensions is None:
        return None
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)):
        raise InvalidInputError(f"dimensions must be an integer (e.g. 256) or None for the full width, got "
                                f"{dimensions!r} ({type(dimensions).__name__})")
    if dimensions < 1:
        raise InvalidInputError(f"dimensions must be at least 1, got {dimensions}")
    return int(dimensions)


def validate_dimensions(dimensions: object, full: int, trained: tuple[int, ...] = TRAINED_DIMENSIONS) -> int:
    """Return the output width for ``dimensions`` (None = full width), rejecting sizes the model cannot give.

    ``trained``: the Matryoshka sizes the model was trained for (jina-embeddings-v3's by default; ``()`` for a
    plain encoder, whose message then says it has none)."""
    if dimensions is None:
        return full
    if isinstance(dimensions, (int, np.integer)) and not isinstance(dimensions, bool) and not 1 <= dimensions <= full:
        sizes = [size for size in trained if size <= full]
        hint = (f" (trained sizes: {', '.join(map(str, sizes))})" if sizes else "" if trained else
                " (this model was not trained for Matryoshka sizes: any width up to its full one works, shorter "
                "ones lose more quality than with jina-embeddings-v3)")
        raise InvalidInputError(f"dimensions must be between 1 and {full}{hint}, got {dimensions}")
    return int(check_dimensions(dimensions) or full)


def validate_embedding_type(embedding_type: str) -> str:
    if embedding_type not in EMBEDDING_TYPES:
        raise InvalidInputError(
            f"unknown embedding_type {embedding_type!r}; use one of {', '.join(map(repr, EMBEDDING_TYPES))}"
        )
    return embedding_type


def float_path_encoding(embedding_type: str) -> str:
    """The core encoding that a framework's float path (a ``list[float]`` per text) gets for ``embedding_type``.

    Packed bytes read as floats would be an 8x shorter vector ranked by cosine over byte values, so ``binary`` and
    ``ubinary`` become ``binary_float`` (the same bits as ±1 floats); ``base64`` strings are no floats at all.
    """
    if embedding_type in BINARY_TYPES:
        return "binary_float"
    if embedding_type not in ("float", "binary_float"):
        raise InvalidInputError(
            f"embedding_type {embedding_type!r} cannot be a framework's list of floats; use 'float', or 'binary' "
            "for the sign bits as ±1 floats (store real bit vectors with the core Embedder's packed 'binary' output)"
        )
    return embedding_type


def truncate_normalise(vectors: np.ndarray, dimensions: int | None = None, normalized: bool = True) -> np.ndarray:
    """Cut ``vectors`` (n, full) to ``dimensions`` columns, then scale each row to unit L2 norm if ``normalized``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    width = validate_dimensions(dimensions, vectors.shape[1])
    out = np.array(vectors[:, :width], dtype=np.float32, copy=True)
    if normalized:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.maximum(norms, 1e-12, out=norms)
        out /= norms
    return out


def encode(vectors: np.ndarray, embedding_type: str = "float") -> np.ndarray | list[str]:
    """Encode float vectors like the Jina API's ``embedding_type``.

    ``binary``/``ubinary`` pack the sign bits (1 where the value is > 0) eight per byte, as int8 (offset by -128)
    and uint8 respectively; ``binary_float`` gives the same bits unpacked as +1.0/-1.0 float32, one per dimension;
    ``base64`` gives the little-endian float32 bytes of each vector as a string.
    """
    validate_embedding_type(embedding_type)
    vectors = np.asarray(vectors, dtype=np.float32)
    if embedding_type == "float":
        return vectors
    if embedding_type == "base64":
        little = vectors.astype("<f4", copy=False)
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    if embedding_type == "binary_float":
        return np.where(vectors > 0, np.float32(1.0), np.float32(-1.0))
    bits = np.packbits(vectors > 0, axis=-1)
    if embedding_type == "ubinary":
        return bits
    return (bits.astype(np.int16) - 128).astype(np.int8)


def decode_base64(value: str) -> np.ndarray:
    """Inverse of the ``base64`` encoding for one vector."""
    return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
