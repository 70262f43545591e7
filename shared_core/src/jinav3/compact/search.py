"""Search compact codes, then rescore the candidates at full precision.

Why: Hamming distance over sign bits (or the dot product of int8 codes) is a coarse ranking; fetching
``oversampling`` times more candidates than wanted and re-ranking them by the float dot product restores most of
the float ranking's quality at a fraction of the memory. This is what Qdrant's ``rescore``/``oversampling`` and a
pgvector ``bit`` index followed by an ``ORDER BY`` over ``halfvec`` do; these functions are the in-process
reference that the store recipes are checked against, and what the SciFact benchmark uses.
"""

from __future__ import annotations

import numpy as np

from jinav3.compact.forms import Layout
from jinav3.errors import InvalidInputError

#: Queries per block when computing Hamming distances: bounds the temporary (block, n, bytes) array.
_QUERY_BLOCK = 16
#: Set bits of every byte value: the popcount where numpy (< 2.0) has no ``bitwise_count``.
_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)
_bit_count = getattr(np, "bitwise_count", _POPCOUNT.__getitem__)


def hamming_distances(query_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(q, n)`` counts of differing bits between packed ``uint8`` query codes and stored codes."""
    queries, stored = np.asarray(query_codes), np.asarray(codes)
    if queries.dtype != np.uint8 or stored.dtype != np.uint8 or queries.ndim != 2 or stored.ndim != 2:
        raise InvalidInputError("hamming_distances takes 2-D uint8 packed bits (jinav3.compact.binary_codes)")
    if queries.shape[1] != stored.shape[1]:
        raise InvalidInputError(f"query codes have {queries.shape[1]} bytes but stored codes {stored.shape[1]}")
    out = np.empty((len(queries), len(stored)), dtype=np.int32)
    for first in range(0, len(queries), _QUERY_BLOCK):
        block = queries[first:first + _QUERY_BLOCK, None, :] ^ stored[None, :, :]
        out[first:first + _QUERY_BLOCK] = _bit_count(block).sum(axis=-1, dtype=np.int32)
    return out


def code_scores(query_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(q, n)`` similarities of compact codes, larger is closer: minus the Hamming distance for packed bits, the
    integer dot product for int8 codes."""
    queries, stored = Layout.of(query_codes), Layout.of(codes)
    if queries != stored:
        raise InvalidInputError(f"queries are {queries} but the stored vectors {stored}")
    if queries.form == "binary":
        return -hamming_distances(query_codes, codes)
    if queries.form == "int8":
        return np.asarray(query_codes, dtype=np.int32) @ np.asarray(codes, dtype=np.int32).T
    return np.asarray(query_codes, dtype=np.float32) @ np.asarray(codes, dtype=np.float32).T


def top_candidates(scores: np.ndarray, count: int) -> np.ndarray:
    """``(q, min(count, n))`` indices of the best scores per row, best first; ties keep stored order."""
    if count < 1:
        raise InvalidInputError(f"the candidate count must be at least 1, got {count}")
    return np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :count]


def rescore(query_vectors: np.ndarray, float_vectors: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``candidates`` (indices per query) re-ordered by the float dot product with each query, best first; ties
    keep candidate order. The result is exactly the float ranking restricted to the candidate set."""
    queries = np.asarray(query_vectors, dtype=np.float32)
    stored = np.asarray(float_vectors, dtype=np.float32)
    picked = np.asarray(candidates)
    if queries.ndim != 2 or stored.ndim != 2 or queries.shape[1] != stored.shape[1]:
        raise InvalidInputError(f"queries of shape {queries.shape} and stored vectors of shape {stored.shape} do "
                                "not have one width")
    if picked.ndim != 2 or len(picked) != len(queries):
        raise InvalidInputError(f"need one row of candidates per query, got shape {picked.shape}")
    scores = np.einsum("qd,qkd->qk", queries, stored[picked])
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(picked, order, axis=1)


def search(
    query_vectors: np.ndarray, float_vectors: np.ndarray, query_codes: np.ndarray, codes: np.ndarray,
    limit: int, oversampling: float | None = None,
) -> np.ndarray:
    """The ``limit`` best stored vectors per query: by the codes alone (``oversampling=None``), or
    ``ceil(limit * oversampling)`` candidates by the codes, rescored with the float vectors and cut to ``limit``."""
    if oversampling is not None and not oversampling >= 1.0:
        raise InvalidInputError(f"oversampling must be at least 1 (or None for no rescoring), got {oversampling}")
    scores = code_scores(query_codes, codes)
    if oversampling is None:
        return top_candidates(scores, limit)
    candidates = top_candidates(scores, int(np.ceil(limit * oversampling)))
    return rescore(query_vectors, float_vectors, candidates)[:, :limit]
