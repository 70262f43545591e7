"""Rank documents for each query by their best chunk: a document counts once, at its first occurrence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jinav3.errors import InvalidInputError


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
    owners = np.asarray(chunk_docs, dtype=np.int64)
    if len(owners) != len(chunk_vectors):
        raise InvalidInputError(f"{len(chunk_vectors)} chunk vectors but {len(owners)} chunk owners")
    if len(owners) and (np.any(np.diff(owners) < 0) or owners[0] != 0 or owners[-1] != len(doc_ids) - 1
                        or np.any(np.diff(owners) > 1)):
        raise InvalidInputError("chunk owners must be contiguous per document and cover every document")
    starts = np.flatnonzero(np.r_[True, np.diff(owners) != 0])
    k = min(top_k, len(doc_ids))
    rankings: list[list[str]] = []
    for first in range(0, len(query_vectors), query_block):
        scores = query_vectors[first : first + query_block] @ chunk_vectors.T
        best = np.maximum.reduceat(scores, starts, axis=1)
        order = np.argsort(-best, axis=1, kind="stable")[:, :k]
        rankings.extend([doc_ids[j] for j in row] for row in order)
    return rankings
