"""nDCG@k and Recall@k as BEIR reports them (pytrec_eval definitions: linear gain, log2 discount)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """DCG of the top ``k`` ranked ids over the DCG of the ideal order; gains are the graded relevances."""
    dcg = sum(judged.get(doc_id, 0) / math.log2(rank + 2) for rank, doc_id in enumerate(ranking[:k]))
    ideal = sorted((s for s in judged.values() if s > 0), reverse=True)[:k]
    idcg = sum(score / math.log2(rank + 2) for rank, score in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant ids (relevance > 0) that appear in the top ``k``."""
    relevant = {doc_id for doc_id, score in judged.items() if score > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mean_metrics(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], ndcg_k: int = 10,
    recall_k: int = 100,
) -> dict[str, float]:
    """Mean nDCG@ndcg_k and Recall@recall_k over every query of ``qrels`` (a query with no ranking scores 0)."""
    if not qrels:
        return {f"ndcg@{ndcg_k}": 0.0, f"recall@{recall_k}": 0.0}
    ndcg = [ndcg_at_k(rankings.get(qid, []), judged, ndcg_k) for qid, judged in qrels.items()]
    recall = [recall_at_k(rankings.get(qid, []), judged, recall_k) for qid, judged in qrels.items()]
    return {f"ndcg@{ndcg_k}": sum(ndcg) / len(ndcg), f"recall@{recall_k}": sum(recall) / len(recall)}
