"""Run one retrieval evaluation: chunk, embed three ways (naive, late, whole document), rank, score, time.

- ``naive``: every chunk embedded on its own (the usual RAG pipeline).
- ``late``: every document embedded whole (macro windows past the context), chunk vectors pooled from its token
  vectors (:meth:`jinav3.Embedder.late_chunk_many`, many documents per call), so each chunk keeps its document's
  context.
- ``whole``: each document embedded unchunked as one vector (truncated at the model's context).

Naive and late use the same chunk boundaries and all settings the same query vectors, so the only difference is
how the document side was embedded. Vectors are computed once, at full width and not normalised, and cached
(:class:`jinav3.evaluation.cache.VectorCache`); every Matryoshka size and output encoding is derived from them
(truncate, normalise, encode), which is exactly what asking the embedder for ``dimensions=d`` and
``embedding_type=...`` does. Binary codes are ranked by Hamming distance.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from jinav3.embedder import Embedder
from jinav3.errors import InvalidInputError
from jinav3.evaluation.beir import BeirDataset
from jinav3.evaluation.cache import VectorCache, content_hash
from jinav3.evaluation.metrics import mean_metrics
from jinav3.evaluation.ranking import rank_documents, rank_documents_hamming
from jinav3.late_chunking.chunking import chunk_spans, make_chunker
from jinav3.matryoshka import encode, truncate_normalise

SETTINGS = ("naive", "late", "whole")
CHUNKERS = ("tokens", "sentences", "paragraphs")
#: Output encodings the harness scores: float vectors by cosine, packed sign bits by Hamming distance.
SCORED_TYPES = ("float", "binary", "ubinary")

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    ``chunk_sizes`` are the token counts of the ``tokens`` chunker (one chunking per size); ``dimensions`` the
    Matryoshka sizes scored besides the full width; ``embedding_types`` the encodings scored (``float`` by cosine,
    ``binary``/``ubinary`` by Hamming distance).
    """

    chunkers: tuple[str, ...] = ("tokens", "sentences")
    chunk_sizes: tuple[int, ...] = (256,)
    settings: tuple[str, ...] = SETTINGS
    dimensions: tuple[int, ...] = ()
    embedding_types: tuple[str, ...] = ("float",)
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
        bad = [c for c in self.chunkers if c not in CHUNKERS]
        if bad or (not self.chunkers and self.settings != ("whole",)):
            raise InvalidInputError(f"unknown or no chunkers {bad or list(self.chunkers)}; use tokens, sentences "
                                    "or paragraphs")
        if "tokens" in self.chunkers and (not self.chunk_sizes or any(s < 1 for s in self.chunk_sizes)):
            raise InvalidInputError(f"token chunk sizes must be positive, got {list(self.chunk_sizes)}")
        if any(d < 1 for d in self.dimensions):
            raise InvalidInputError(f"Matryoshka sizes must be positive, got {list(self.dimensions)}")
        types = [t for t in self.embedding_types if t not in SCORED_TYPES]
        if types or not self.embedding_types:
            raise InvalidInputError(f"unknown or no embedding types {types or []}; score any of {SCORED_TYPES}")
        if self.ndcg_k < 1 or self.recall_k < 1:
            raise InvalidInputError(f"ndcg_k and recall_k must be positive, got {self.ndcg_k}, {self.recall_k}")

    def chunkings(self) -> list[tuple[str, str, int]]:
        """``(label, chunker, size)`` for every chunking to compare, e.g. ``("tokens64", "tokens", 64)``."""
        if self.settings == ("whole",):
            return []
        out: list[tuple[str, str, int]] = []
        for chunker in self.chunkers:
            if chunker == "tokens":
                out.extend((f"tokens{size}", "tokens", size) for size in dict.fromkeys(self.chunk_sizes))
            else:
                out.append((chunker, chunker, 0))
        return out


@dataclass(frozen=True)
class Embedded:
    """One setting's document side: raw full-width vectors, the document of each, and how long embedding took."""

    vectors: np.ndarray
    owners: np.ndarray
    seconds: float
    cpu_seconds: float = 0.0  # CPU time of this process (all threads): comparable across busy and quiet machines
    cached: bool = False
    facts: dict[str, Any] = field(default_factory=dict)


def chunk_corpus(
    docs: Sequence[str], chunker: str, chunk_size: int, tokenizer: Any | None = None
) -> list[list[tuple[int, int]]]:
    """The chunk spans of every document (one list per document), shared by the naive and late settings.

    ``tokenizer`` is the model's (``Embedder.tokenizer``); only the ``tokens`` chunker needs it."""
    if chunker == "tokens" and tokenizer is None:
        raise InvalidInputError("the tokens chunker needs a tokenizer and this backend has none (the api backend): "
                                "pass the served model's folder as tokenizer (jinav3 eval --tokenizer FOLDER)")
    resolved = make_chunker(chunker, tokenizer, chunk_size)
    return [chunk_spans(doc, resolved) for doc in docs]


def _raw_embedding(embedder: Embedder, texts: Sequence[str], task: str | None, progress: bool) -> np.ndarray:
    return np.asarray(embedder.embed(list(texts), task, normalized=False, truncate=True, show_progress=progress),
                      dtype=np.float32)


def embed_setting(
    embedder: Embedder, setting: str, docs: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
    config: EvalConfig,
) -> Embedded:
    """Embed the document side of one setting: full width, not normalised."""
    progress = config.show_progress
    start, cpu = time.perf_counter(), time.process_time()
    if setting == "whole":
        vectors = _raw_embedding(embedder, docs, config.document_task, progress)
        return Embedded(vectors, np.arange(len(docs)), time.perf_counter() - start, time.process_time() - cpu)
    owners = np.repeat(np.arange(len(docs)), [len(s) for s in spans])
    if setting == "naive":
        texts = [doc[a:b] for doc, doc_spans in zip(docs, spans, strict=True) for a, b in doc_spans]
        vectors = _raw_embedding(embedder, texts, config.document_task, progress)
    else:
        chunks = embedder.late_chunk_many(
            list(docs), spans=spans, task=config.document_task, normalized=False, window=config.window,
            overlap=config.overlap, show_progress=progress,
        )
        vectors = np.stack([c.embedding for doc_chunks in chunks for c in doc_chunks]).astype(np.float32)
    return Embedded(vectors, owners, time.perf_counter() - start, time.process_time() - cpu)


def score(
    dataset: BeirDataset, doc_ids: Sequence[str], query_vectors: np.ndarray, embedded: Embedded,
    dimensions: int | None, config: EvalConfig, embedding_type: str = "float",
) -> dict[str, float]:
    """nDCG and recall of one setting at one Matryoshka size (``None``: full width) and output encoding."""
    q = truncate_normalise(query_vectors, dimensions)
    c = truncate_normalise(embedded.vectors, dimensions)
    top_k = max(config.ndcg_k, config.recall_k)
    if embedding_type == "float":
        ranked = rank_documents(q, c, embedded.owners, doc_ids, top_k)
    else:
        ranked = rank_documents_hamming(encode(q, embedding_type), encode(c, embedding_type), embedded.owners,
                                        doc_ids, top_k)
    rankings = dict(zip(dataset.queries, ranked, strict=True))
    return mean_metrics(rankings, dataset.qrels, config.ndcg_k, config.recall_k)


def bytes_per_vector(dimensions: int, embedding_type: str) -> int:
    """Storage of one vector: 4 bytes a dimension for float32, one bit a dimension (whole bytes) for binary."""
    return 4 * dimensions if embedding_type == "float" else -(-dimensions // 8)


class _Run:
    """One evaluation's shared state: embedder, cache, log and the per-phase timings."""

    def __init__(self, embedder: Embedder, config: EvalConfig, cache: VectorCache, log: Log) -> None:
        self.embedder, self.config, self.cache, self.log = embedder, config, cache, log
        self.model = embedder.describe()
        self.phases: dict[str, float] = {}

    def timed(self, phase: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        self.phases[phase] = round(time.perf_counter() - start, 3)
        return value

    def cached(self, parts: dict[str, Any], compute: Callable[[], Embedded], label: str) -> Embedded:
        """Load ``parts`` from the cache or compute and store it; log which, with the time."""
        parts = {"model": self.model, **parts}
        found = self.cache.load(parts)
        if found is not None:
            array, facts = found
            owners = np.asarray(facts.get("owners_counts", []), dtype=np.int64)
            embedded = Embedded(array, np.repeat(np.arange(len(owners)), owners), float(facts.get("seconds", 0.0)),
                                float(facts.get("cpu_seconds", 0.0)), cached=True, facts=facts)
            self.log(f"  {label}: {len(array)} vectors from the cache (embedded in {embedded.seconds:.1f} s, "
                     f"{embedded.cpu_seconds:.1f} CPU s then)")
            return embedded
        self.log(f"  {label}: embedding ...")
        embedded = compute()
        counts = np.bincount(embedded.owners, minlength=int(embedded.owners.max(initial=-1)) + 1).tolist()
        self.cache.save(parts, embedded.vectors, {
            "seconds": round(embedded.seconds, 3), "cpu_seconds": round(embedded.cpu_seconds, 3),
            "owners_counts": counts, "vectors": len(embedded.vectors), "written": time.strftime("%Y-%m-%d %H:%M"),
        })
        self.log(f"  {label}: {len(embedded.vectors)} vectors in {embedded.seconds:.1f} s "
                 f"({embedded.cpu_seconds:.1f} CPU s)")
        return embedded


def evaluate(
    embedder: Embedder,
    dataset: BeirDataset,
    config: EvalConfig | None = None,
    *,
    cache: VectorCache | None = None,
    tokenizer: Any | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Evaluate every setting of ``config`` on ``dataset``; returns a JSON-ready report.

    ``cache`` (default: none) stores raw vectors so a rerun, for instance with more dimensions, skips the model;
    ``tokenizer`` cuts token chunks when the embedder has none (the api backend); ``log`` receives one line per
    phase with its time (default: standard error)."""
    config = config or EvalConfig()
    run = _Run(embedder, config, cache or VectorCache(None), log or _stderr)
    wall = time.perf_counter()
    for d in config.dimensions:
        if not 1 <= d <= embedder.dimensions:
            raise InvalidInputError(f"dimension {d} is outside 1..{embedder.dimensions} for {embedder.model_name}")
    doc_ids, docs = list(dataset.corpus), list(dataset.corpus.values())
    queries = list(dataset.queries.values())
    docs_hash = content_hash(zip(doc_ids, docs, strict=True))
    run.log(f"{dataset.name}: {len(docs)} documents, {len(queries)} queries, model {run.model.get('model')}")

    spans_by_label: dict[str, list[list[tuple[int, int]]]] = {}
    for label, chunker, size in config.chunkings():
        spans_by_label[label] = run.timed(f"chunking:{label}", lambda c=chunker, s=size: chunk_corpus(
            docs, c, s, tokenizer if tokenizer is not None else embedder.tokenizer))
        run.log(f"  chunked {label}: {sum(map(len, spans_by_label[label]))} chunks in "
                f"{run.phases[f'chunking:{label}']:.1f} s")

    query_parts = query_cache_parts(queries, config)
    query_side = run.timed("queries", lambda: run.cached(query_parts, lambda: Embedded(
        *_timed_raw(embedder, queries, config.query_task, config.show_progress)), "queries"))
    width = query_side.vectors.shape[1]
    for d in config.dimensions:
        if d > width:
            raise InvalidInputError(f"dimension {d} is more than the {width} dimensions the model returned")

    plan = [(s, label) for label in spans_by_label for s in config.settings if s != "whole"]
    if "whole" in config.settings:
        plan.append(("whole", None))
    results: dict[str, Any] = {}
    for setting, label in plan:
        name = f"{setting}:{label}" if label else setting
        spans = spans_by_label[label] if label else []
        parts = document_cache_parts(setting, docs_hash, config, label, spans)
        embedded = run.timed(f"embedding:{name}", lambda s=setting, sp=spans, p=parts, n=name: run.cached(
            p, lambda: embed_setting(embedder, s, docs, sp, config), n))
        results[name] = _score_setting(run, dataset, doc_ids, query_side.vectors, embedded, setting, label, name)

    run.phases["total"] = round(time.perf_counter() - wall, 3)
    run.log(f"done in {run.phases['total']:.1f} s (" + ", ".join(
        f"{k} {v:.1f} s" for k, v in run.phases.items() if k != "total") + ")")
    return {
        "dataset": dataset.name,
        "documents": len(docs),
        "queries": len(dataset.queries),
        "chunks": {label: sum(map(len, spans)) for label, spans in spans_by_label.items()},
        "mean_document_chars": round(sum(map(len, docs)) / max(len(docs), 1), 1),
        "model": run.model,
        "full_dimensions": width,
        "config": {k: v for k, v in asdict(config).items() if k != "show_progress"},
        "query_seconds": round(query_side.seconds, 3),
        "phase_seconds": run.phases,
        "results": results,
    }


def query_cache_parts(queries: Sequence[str], config: EvalConfig) -> dict[str, Any]:
    """What keys the query vectors in the cache (the model's ``describe()`` is added as ``model``)."""
    return {"kind": "queries", "task": config.query_task, "texts": content_hash(queries)}


def document_cache_parts(
    setting: str, docs_hash: str, config: EvalConfig, label: str | None = None,
    spans: Sequence[Sequence[tuple[int, int]]] = (),
) -> dict[str, Any]:
    """What keys one setting's document vectors in the cache (``docs_hash``: :func:`content_hash` of the
    ``(id, text)`` pairs; the model's ``describe()`` is added as ``model``), so other tools can read them back."""
    parts: dict[str, Any] = {"kind": setting, "task": config.document_task, "docs": docs_hash}
    if label:
        parts.update(chunking=label, spans=content_hash(spans))
    if setting == "late":
        parts.update(window=config.window, overlap=config.overlap)
    return parts


def _timed_raw(embedder: Embedder, texts: Sequence[str], task: str | None, progress: bool) -> tuple:
    start, cpu = time.perf_counter(), time.process_time()
    vectors = _raw_embedding(embedder, texts, task, progress)
    return vectors, np.arange(len(texts)), time.perf_counter() - start, time.process_time() - cpu


def _score_setting(
    run: _Run, dataset: BeirDataset, doc_ids: list[str], query_vectors: np.ndarray, embedded: Embedded,
    setting: str, label: str | None, name: str,
) -> dict[str, Any]:
    config = run.config
    width = embedded.vectors.shape[1]
    start = time.perf_counter()
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for etype in config.embedding_types:
        scores[etype] = {
            str(d or width): score(dataset, doc_ids, query_vectors, embedded, d, config, etype)
            for d in (None, *[d for d in config.dimensions if d != width])
        }
    run.phases[f"scoring:{name}"] = round(time.perf_counter() - start, 3)
    full = scores.get("float", next(iter(scores.values())))[str(width)]
    return {
        "setting": setting,
        "chunker": label,
        "seconds": round(embedded.seconds, 3),
        "cpu_seconds": round(embedded.cpu_seconds, 3),
        "cached": embedded.cached,
        "vectors": len(embedded.vectors),
        "metrics": full,
        "scores": scores,
    }


def format_report(report: dict[str, Any]) -> str:
    """Markdown tables of the report: one row per setting (nDCG and recall in %, time in seconds), then nDCG by
    Matryoshka size and encoding when more than the full-width float vectors were scored."""
    cfg = report["config"]
    ndcg, recall = f"ndcg@{cfg['ndcg_k']}", f"recall@{cfg['recall_k']}"
    lines = [
        f"{report['dataset']}: {report['documents']} documents (mean {report['mean_document_chars']:.0f} "
        f"characters), {report['queries']} queries, model {report['model'].get('model')}",
        "",
        f"| setting | chunks | nDCG@{cfg['ndcg_k']} % | Recall@{cfg['recall_k']} % | vectors | embedding time s "
        "| CPU s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in report["results"].values():
        m = result["metrics"]
        seconds = f"{result['seconds']:.1f}" + (" (cached)" if result.get("cached") else "")
        cpu = result.get("cpu_seconds", 0.0)
        lines.append(f"| {result['setting']} | {result['chunker'] or 'none'} | {100 * m[ndcg]:.2f} | "
                     f"{100 * m[recall]:.2f} | {result['vectors']} | {seconds} | {cpu:.1f} |")
    columns = [(etype, dim) for etype, by_dim in next(iter(report["results"].values()))["scores"].items()
               for dim in sorted(by_dim, key=int)]
    if len(columns) > 1:
        lines += ["", f"nDCG@{cfg['ndcg_k']} % by width and encoding (bytes per vector in brackets):", "",
                  "| setting | " + " | ".join(f"{t} {d} ({bytes_per_vector(int(d), t)} B)" for t, d in columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        for name, result in report["results"].items():
            lines.append(f"| {name} | " + " | ".join(f"{100 * result['scores'][t][d][ndcg]:.2f}" for t, d in columns)
                         + " |")
    total = report["phase_seconds"]["total"]
    lines.append(f"\nqueries embedded in {report['query_seconds']:.2f} s; evaluation took {total:.1f} s")
    return "\n".join(lines)
