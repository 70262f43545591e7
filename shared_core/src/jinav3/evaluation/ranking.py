"""Rank documents for each query by their best chunk: a document counts once, at its first occurrence.

Two similarities: the dot product of unit vectors (cosine), and for packed sign bits (the ``binary``/``ubinary``
output types) the negated Hamming distance, which is how binary embeddings are searched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from jinav3.errors import InvalidInputError


def _chunk_starts(owners: np.ndarray, count: int, doc_count: int) -> np.ndarray:
    if len(owners) != count:
        raise InvalidInputError(f"{count} chunk vectors but {len(owners)} chunk owners")
    if len(owners) and (np.any(np.diff(owners) < 0) or owners[0] != 0 or owners[-1] != doc_count - 1
                        or np.any(np.diff(owners) > 1)):
        raise InvalidInputError("chunk owners must be contiguous per document and cover every document")
    return np.flatnonzero(np.r_[True, np.diff(owners) != 0])


def _rank(
    scores_of: Callable[[int, int], np.ndarray], query_count: int, chunk_count: int, chunk_docs: Sequence[int],
    doc_ids: Sequence[str], top_k: int, query_block: int,
) -> list[list[str]]:
    starts = _chunk_starts(np.asarray(chunk_docs, dtype=np.int64), chunk_count, len(doc_ids))
    k = min(top_k, len(doc_ids))
    rankings: list[list[str]] = []
    for first in range(0, query_count, query_block):
        scores = scores_of(first, min(first + query_block, query_count))
        best = np.maximum.reduceat(scores, starts, axis=1)
        order = np.argsort(-best, axis=1, kind="stable")[:, :k]
        rankings.extend([doc_ids[j] for j in row] for row in order)
    return rankings


def rank_documents(
    query_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    chunk_docs: Sequence[int],
    doc_ids: Sequence[str],
    top_k: int = 100,
    query_block: int = 256,
) -> list[list[str]]:
    """For each query, the ids of the ``top_k`` best documents.

    Vectors are unit length, so the dot product is the cosine. Chunks of one document must be contiguous
    (``chunk_docs`` non-decreasing); a document's score is its best chunk's, which is the same as walking the
    chunk ranking and keeping each document at its first occurrence. Ties keep corpus order.
    """
    chunks_t = np.ascontiguousarray(np.asarray(chunk_vectors, dtype=np.float32).T)
    queries = np.asarray(query_vectors, dtype=np.float32)
    return _rank(lambda a, b: queries[a:b] @ chunks_t, len(queries), chunks_t.shape[1], chunk_docs, doc_ids,
                 top_k, query_block)


def unpack_bits(codes: np.ndarray) -> np.ndarray:
    """Packed sign bits as a ``(n, bits)`` 0/1 float32 matrix; ``int8`` codes (the ``binary`` type, offset by
    -128) and ``uint8`` codes (``ubinary``) give the same bits."""
    codes = np.asarray(codes)
    if codes.dtype == np.int8:
        codes = (codes.astype(np.int16) + 128).astype(np.uint8)
    elif codes.dtype != np.uint8:
        raise InvalidInputError(f"packed binary codes must be int8 or uint8, got {codes.dtype}")
    return np.unpackbits(codes, axis=-1).astype(np.float32)


def rank_documents_hamming(
    query_codes: np.ndarray,
    chunk_codes: np.ndarray,
    chunk_docs: Sequence[int],
    doc_ids: Sequence[str],
    top_k: int = 100,
    query_block: int = 256,
) -> list[list[str]]:
    """Like :func:`rank_documents` for packed binary codes: the fewer differing bits, the better (a document's
    score is its closest chunk's). Ties keep corpus order."""
    queries, chunks = unpack_bits(query_codes), unpack_bits(chunk_codes)
    if queries.shape[1] != chunks.shape[1]:
        raise InvalidInputError(f"query codes have {queries.shape[1]} bits but chunk codes {chunks.shape[1]}")
    chunks_t = np.ascontiguousarray(chunks.T)
    chunk_ones = chunks.sum(axis=1)
    query_ones = queries.sum(axis=1)

    def negative_hamming(a: int, b: int) -> np.ndarray:
        # |q xor c| = |q| + |c| - 2 q.c for 0/1 vectors
        return 2 * (queries[a:b] @ chunks_t) - query_ones[a:b, None] - chunk_ones[None, :]

    return _rank(negative_hamming, len(queries), len(chunks), chunk_docs, doc_ids, top_k, query_block)
