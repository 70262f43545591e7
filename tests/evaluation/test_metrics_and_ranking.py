"""nDCG/Recall against hand-computed values, and best-chunk document ranking on hand-made vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import InvalidInputError
from jinav3.evaluation import mean_metrics, ndcg_at_k, rank_documents, rank_documents_hamming, recall_at_k
from jinav3.matryoshka import encode


def test_ndcg_single_relevant_at_rank_three() -> None:
    assert ndcg_at_k(["a", "b", "c"], {"c": 1}) == pytest.approx(1 / math.log2(4))
    assert ndcg_at_k(["c", "a"], {"c": 1}) == 1.0
    assert ndcg_at_k(["a", "b"], {"c": 1}) == 0.0


def test_ndcg_graded_by_hand() -> None:
    # DCG = 2/log2(2) + 1/log2(4) = 2.5; ideal gains 2, 1, 1 -> 2 + 1/log2(3) + 1/log2(4) = 3.1309...
    judged = {"a": 2, "c": 1, "e": 1, "z": 0}
    assert ndcg_at_k(["a", "b", "c", "d"], judged, 10) == pytest.approx(2.5 / (2.5 + 1 / math.log2(3)))
    assert ndcg_at_k(["b", "a"], judged, 1) == 0.0  # cut at k
    assert ndcg_at_k(["a", "b"], judged, 1) == 1.0  # ideal at k=1 is only the grade-2 document


def test_recall_by_hand() -> None:
    judged = {"a": 2, "c": 1, "e": 1, "z": 0}  # zero-graded documents are not relevant
    assert recall_at_k(["a", "b", "c", "d"], judged, 2) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "b", "c", "d"], judged, 100) == pytest.approx(2 / 3)
    assert recall_at_k(["z"], {"z": 0}, 10) == 0.0


def test_mean_over_queries_missing_ranking_scores_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    means = mean_metrics({"q1": ["a", "b"]}, qrels, ndcg_k=10, recall_k=100)
    assert means == {"ndcg@10": 0.5, "recall@100": 0.5}


def test_rank_by_best_chunk_each_document_once() -> None:
    chunks = np.array([[1, 0], [0, 1], [0.8, 0.6]], dtype=np.float32)  # doc A: two chunks; doc B: one
    queries = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    ranked = rank_documents(queries, chunks, [0, 0, 1], ["A", "B"], top_k=100)
    # q3 scores: A's chunks 0.6 and 0.8 -> 0.8; B 0.48 + 0.48 = 0.96
    assert ranked == [["A", "B"], ["A", "B"], ["B", "A"]]
    assert rank_documents(queries[:1], chunks, [0, 0, 1], ["A", "B"], top_k=1) == [["A"]]


def test_rank_rejects_interleaved_chunks() -> None:
    vectors = np.eye(3, dtype=np.float32)
    with pytest.raises(InvalidInputError, match="contiguous"):
        rank_documents(vectors, vectors, [0, 1, 0], ["A", "B"])
    with pytest.raises(InvalidInputError, match="owners"):
        rank_documents(vectors, vectors, [0, 1], ["A", "B"])


def _owners_strategy() -> st.SearchStrategy[list[int]]:
    """Chunk owners: every document has 1..4 contiguous chunks."""
    return st.lists(st.integers(1, 4), min_size=1, max_size=6).map(
        lambda counts: [d for d, n in enumerate(counts) for _ in range(n)])


@settings(max_examples=40, deadline=None)
@given(owners=_owners_strategy(), queries=st.integers(1, 5), bits=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_hamming_ranking_is_best_chunk_by_fewest_differing_bits(owners: list[int], queries: int, bits: int,
                                                               seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((queries, bits)).astype(np.float32)
    c = rng.standard_normal((len(owners), bits)).astype(np.float32)
    doc_ids = [f"d{i}" for i in range(owners[-1] + 1)]
    ranked = rank_documents_hamming(encode(q, "binary"), encode(c, "binary"), owners, doc_ids)
    assert ranked == rank_documents_hamming(encode(q, "ubinary"), encode(c, "ubinary"), owners, doc_ids)
    for qi, row in enumerate(ranked):
        # brute force: a document's distance is its closest chunk's; ties keep corpus order
        distance = {}
        for chunk, doc in enumerate(owners):
            d = int(np.count_nonzero((q[qi] > 0) != (c[chunk] > 0)))
            distance[doc_ids[doc]] = min(distance.get(doc_ids[doc], bits + 1), d)
        assert row == sorted(doc_ids, key=lambda doc: (distance[doc], doc_ids.index(doc)))


def test_hamming_rejects_floats_and_mismatched_widths() -> None:
    codes = encode(np.ones((2, 16), np.float32), "ubinary")
    with pytest.raises(InvalidInputError, match="int8 or uint8"):
        rank_documents_hamming(np.ones((1, 2), np.float32), codes, [0, 1], ["A", "B"])
    with pytest.raises(InvalidInputError, match="bits"):
        rank_documents_hamming(encode(np.ones((1, 24), np.float32), "ubinary"), codes, [0, 1], ["A", "B"])
