"""Retrieval evaluation of chunking strategies (naive, late, whole document) on BEIR-format data sets.

The protocol is the late chunking paper's (arXiv 2409.04701, section 4): chunk every document, embed the chunks,
rank documents for each query by their best chunk, report nDCG@10 and Recall@100.
"""

from jinav3.evaluation.beir import BeirDataset, load_beir, write_beir
from jinav3.evaluation.harness import SETTINGS, EvalConfig, evaluate, format_report
from jinav3.evaluation.metrics import mean_metrics, ndcg_at_k, recall_at_k
from jinav3.evaluation.ranking import rank_documents

__all__ = [
    "SETTINGS",
    "BeirDataset",
    "EvalConfig",
    "evaluate",
    "format_report",
    "load_beir",
    "mean_metrics",
    "ndcg_at_k",
    "rank_documents",
    "recall_at_k",
    "write_beir",
]
