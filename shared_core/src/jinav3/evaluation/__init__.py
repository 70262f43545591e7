"""Retrieval evaluation of chunking strategies (naive, late, whole document) on BEIR-format data sets.

The protocol is the late chunking paper's (arXiv 2409.04701, section 4): chunk every document, embed the chunks,
rank documents for each query by their best chunk, report nDCG@10 and Recall@100.
"""

from jinav3.evaluation.beir import BeirDataset, load_beir, write_beir
from jinav3.evaluation.cache import VectorCache, default_cache_dir
from jinav3.evaluation.harness import SETTINGS, EvalConfig, bytes_per_vector, evaluate, format_report
from jinav3.evaluation.metrics import mean_metrics, ndcg_at_k, recall_at_k
from jinav3.evaluation.ranking import rank_documents, rank_documents_hamming

__all__ = [
    "SETTINGS",
    "BeirDataset",
    "EvalConfig",
    "VectorCache",
    "bytes_per_vector",
    "default_cache_dir",
    "evaluate",
    "format_report",
    "load_beir",
    "mean_metrics",
    "ndcg_at_k",
    "rank_documents",
    "rank_documents_hamming",
    "recall_at_k",
    "write_beir",
]
