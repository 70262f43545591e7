"""Run one retrieval evaluation: chunk, embed three ways (naive, late, whole document), rank, score, time.

- ``naive``: every chunk embedded on its own (the usual RAG pipeline).
- ``late``: every document embedded whole (macro windows past the context), chunk vectors pooled from its token
  vectors (:meth:`jinav3.Embedder.late_chunk_many`), so each chunk keeps its document's context.
- ``whole``: each document embedded unchunked as one vector (truncated at the model's context).

All three use the same chunk boundaries and the same query vectors, so the only difference is how the document
side was embedded. Vectors are computed once at full width; Matryoshka sizes are evaluated by truncating and
re-normalising them, which is exactly what asking the embedder for ``dimensions=d`` does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from jinav3.embedder import Embedder
from jinav3.errors import InvalidInputError
from jinav3.evaluation.beir import BeirDataset
from jinav3.evaluation.metrics import mean_metrics
from jinav3.evaluation.ranking import rank_documents
from jinav3.matryoshka import truncate_normalise

SETTINGS = ("naive", "late", "whole")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate. ``dimensions`` lists Matryoshka sizes to score besides the full width."""

    chunkers: tuple[str, ...] = ("tokens", "sentences")
    chunk_size: int = 256
    settings: tuple[str, ...] = SETTINGS
    dimensions: tuple[int, ...] = ()
    query_task: str | None = "retrieval.query"
    document_task: str | None = "retrieval.passage"
    ndcg_k: int = 10
    recall_k: int = 100
    window: int | None = None
    overlap: int | None = None
    show_progress: bool = False

    def __post_init__(self) -> None:
        unknown = [s for s in self.settings if s not in SETTINGS]
        if unknown or not self.settings:
            raise InvalidInputError(f"unknown or no settings {unknown or list(self.settings)}; pick from {SETTINGS}")
        bad = [c for c in self.chunkers if c not in ("tokens", "sentences", "paragraphs")]
        if bad or not self.chunkers:
            raise InvalidInputError(f"unknown or no chunkers {bad or list(self.chunkers)}; use tokens, sentences "
                                    "or paragraphs")

    def chunker_label(self, chunker: str) -> str:
        return f"tokens{self.chunk_size}" if chunker == "tokens" else chunker


@dataclass(frozen=True)
class Embedded:
    """The document side of one setting: vectors, which document each belongs to, and the time it took."""

    vectors: np.ndarray
    owners: np.ndarray
    seconds: float


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def chunk_corpus(
    embedder: Embedder, docs: Sequence[str], chunker: str, chunk_size: int
) -> list[list[tuple[int, int]]]:
    """The chunk spans of every document (one list per document), shared by the naive and late settings."""
    return [embedder.chunk_spans(doc, chunker, chunk_size=chunk_size) for doc in docs]


def embed_setting(
    embedder: Embedder, setting: str, docs: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
    config: EvalConfig,
) -> Embedded:
    """Embed the document side of one setting at full width."""
    progress = config.show_progress
    if setting == "whole":
        vectors, seconds = _timed(embedder.embed, list(docs), config.document_task, truncate=True,
                                  show_progress=progress)
        return Embedded(vectors, np.arange(len(docs)), seconds)
    owners = np.repeat(np.arange(len(docs)), [len(s) for s in spans])
    if setting == "naive":
        texts = [doc[a:b] for doc, doc_spans in zip(docs, spans, strict=True) for a, b in doc_spans]
        vectors, seconds = _timed(embedder.embed, texts, config.document_task, truncate=True,
                                  show_progress=progress)
        return Embedded(vectors, owners, seconds)
    chunks, seconds = _timed(
        embedder.late_chunk_many, list(docs), spans=spans, task=config.document_task, window=config.window,
        overlap=config.overlap, show_progress=progress,
    )
    vectors = np.stack([c.embedding for doc_chunks in chunks for c in doc_chunks]).astype(np.float32)
    return Embedded(vectors, owners, seconds)


def score(
    dataset: BeirDataset, doc_ids: Sequence[str], query_vectors: np.ndarray, embedded: Embedded,
    dimensions: int | None, config: EvalConfig,
) -> dict[str, float]:
    """nDCG and recall of one setting at one Matryoshka size (``None``: full width)."""
    q = truncate_normalise(query_vectors, dimensions)
    c = truncate_normalise(embedded.vectors, dimensions)
    top_k = max(config.ndcg_k, config.recall_k)
    rankings = dict(zip(dataset.queries, rank_documents(q, c, embedded.owners, doc_ids, top_k), strict=True))
    return mean_metrics(rankings, dataset.qrels, config.ndcg_k, config.recall_k)


def evaluate(embedder: Embedder, dataset: BeirDataset, config: EvalConfig | None = None) -> dict[str, Any]:
    """Evaluate every setting of ``config`` on ``dataset``; returns a JSON-ready report."""
    config = config or EvalConfig()
    for d in config.dimensions:
        if not 1 <= d <= embedder.dimensions:
            raise InvalidInputError(f"dimension {d} is outside 1..{embedder.dimensions} for {embedder.model_name}")
    doc_ids, docs = list(dataset.corpus), list(dataset.corpus.values())
    query_vectors, query_seconds = _timed(embedder.embed, list(dataset.queries.values()), config.query_task,
                                          truncate=True, show_progress=config.show_progress)
    plan: list[tuple[str, str | None]] = [(s, c) for c in config.chunkers for s in config.settings if s != "whole"]
    if "whole" in config.settings:
        plan.append(("whole", None))
    spans_by_chunker: dict[str, list[list[tuple[int, int]]]] = {}
    chunking_seconds: dict[str, float] = {}
    for chunker in config.chunkers:
        spans_by_chunker[chunker], seconds = _timed(chunk_corpus, embedder, docs, chunker, config.chunk_size)
        chunking_seconds[config.chunker_label(chunker)] = round(seconds, 3)
    results: dict[str, Any] = {}
    for setting, chunker in plan:
        spans = spans_by_chunker[chunker] if chunker else []
        embedded = embed_setting(embedder, setting, docs, spans, config)
        label = f"{setting}:{config.chunker_label(chunker)}" if chunker else setting
        results[label] = {
            "setting": setting,
            "chunker": config.chunker_label(chunker) if chunker else None,
            "seconds": round(embedded.seconds, 3),
            "vectors": len(embedded.vectors),
            "metrics": score(dataset, doc_ids, query_vectors, embedded, None, config),
            "by_dimension": {
                str(d): score(dataset, doc_ids, query_vectors, embedded, d, config) for d in config.dimensions
            },
        }
    return {
        "dataset": dataset.name,
        "documents": len(docs),
        "queries": len(dataset.queries),
        "chunks": {config.chunker_label(c): sum(map(len, spans)) for c, spans in spans_by_chunker.items()},
        "mean_document_chars": round(sum(map(len, docs)) / max(len(docs), 1), 1),
        "model": embedder.describe(),
        "full_dimensions": embedder.dimensions,
        "config": {k: v for k, v in asdict(config).items() if k != "show_progress"},
        "chunking_seconds": chunking_seconds,
        "query_seconds": round(query_seconds, 3),
        "results": results,
    }


def format_report(report: dict[str, Any]) -> str:
    """A Markdown table of the report: one row per setting (nDCG and recall in %, time in seconds)."""
    cfg = report["config"]
    ndcg, recall = f"ndcg@{cfg['ndcg_k']}", f"recall@{cfg['recall_k']}"
    lines = [
        f"{report['dataset']}: {report['documents']} documents (mean {report['mean_document_chars']:.0f} "
        f"characters), {report['queries']} queries, model {report['model'].get('model')}",
        "",
        f"| setting | chunks | nDCG@{cfg['ndcg_k']} % | Recall@{cfg['recall_k']} % | vectors | embedding time s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for result in report["results"].values():
        m = result["metrics"]
        lines.append(f"| {result['setting']} | {result['chunker'] or 'none'} | {100 * m[ndcg]:.2f} | "
                     f"{100 * m[recall]:.2f} | {result['vectors']} | {result['seconds']:.2f} |")
    lines.append(f"\nqueries embedded in {report['query_seconds']:.2f} s")
    return "\n".join(lines)
