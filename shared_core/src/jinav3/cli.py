"""The ``jinav3`` command: embed texts or late-chunk files from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jinav3.distributed.cli import add_index_parser, run_index
from jinav3.errors import JinaV3Error
from jinav3.settings import DTYPE_HELP
from jinav3.tasks import TASKS


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or hub id (default: jina-embeddings-v3, else a small "
                        "bundled model when offline)")
    parser.add_argument("--task", choices=[*TASKS, "none"], help="task adapter (default depends on the command)")
    parser.add_argument("--dimensions", type=int, help="Matryoshka size, 1..1024 (trained: 32..1024)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--dtype", help=DTYPE_HELP)
    parser.add_argument("--output", "-o", help="output file (default: standard output)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jinav3",
        description="jina-embeddings-v3 with task adapters, late chunking and Matryoshka dimensions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser("embed", help="embed texts (arguments, files or stdin lines) into JSONL or .npy",
                           description="Embed each text; one JSONL record {index, text, embedding} per text, "
                           "or a (n, d) float32 array with --format npy.")
    embed.add_argument("texts", nargs="*", help="texts to embed (omit to read --file or standard input)")
    embed.add_argument("--file", "-f", action="append", default=[], help="a text file; every line is one text")
    embed.add_argument("--format", choices=["jsonl", "npy"], default="jsonl")
    embed.add_argument("--truncate", action="store_true", help="cut texts longer than the context instead of failing")
    _add_model_options(embed)

    chunk = sub.add_parser("chunk", help="late-chunk whole files into JSONL chunks with spans and vectors",
                           description="Each file is one document: it is embedded whole, then cut into chunks "
                           "whose vectors keep the document's context. One JSONL record per chunk.")
    chunk.add_argument("files", nargs="+", help="text files, one document each")
    chunk.add_argument("--chunker", choices=["sentences", "paragraphs", "tokens"], default="sentences")
    chunk.add_argument("--chunk-size", type=int, default=256, help="tokens per chunk for --chunker tokens")
    chunk.add_argument("--chunk-overlap", type=int, default=0, help="tokens shared by neighbouring token chunks")
    _add_model_options(chunk)

    serve = sub.add_parser("serve", help="serve the Jina Embeddings API contract (POST /v1/embeddings) over HTTP",
                           description="A self-hosted, Jina-compatible embeddings server on the local model, with "
                           "micro-batching across concurrent requests. Needs the server extra (fastapi, uvicorn).")
    serve.add_argument("--model", help="model folder or hub id (default: jina-embeddings-v3, else a small "
                       "bundled model when offline)")
    serve.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    serve.add_argument("--dtype", help=DTYPE_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--api-key", action="append", default=[],
                       help="accept only requests with 'Authorization: Bearer KEY' (repeatable; default: the "
                       "comma-separated keys in $JINAV3_SERVE_API_KEY, else no authentication)")
    serve.add_argument("--model-name", default="jina-embeddings-v3",
                       help="the model name clients send and the server reports (default: jina-embeddings-v3)")
    serve.add_argument("--max-inputs", type=int, default=2048, help="inputs per request (default: 2048)")
    serve.add_argument("--max-request-tokens", type=int, help="tokens per request, all inputs together "
                       "(default: no limit beyond max-inputs x the model's context)")
    serve.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024, help="request body size limit")
    serve.add_argument("--batch-tokens", type=int, default=65_536,
                       help="tokens gathered from concurrent requests into one round of forward passes")
    serve.add_argument("--batch-wait-ms", type=float, default=2.0,
                       help="how long a request waits for others to share its batch (default: 2 ms)")
    serve.add_argument("--max-pending", type=int, default=100_000,
                       help="inputs allowed to wait; beyond it requests get 503 with Retry-After")
    serve.add_argument("--graceful-timeout", type=float, default=30.0,
                       help="seconds to let in-flight requests finish on SIGTERM/SIGINT")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _add_eval_parser(sub)
    add_index_parser(sub)
    return parser


def _add_eval_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="retrieval evaluation on a BEIR folder: naive vs late chunking vs whole documents",
                        description="Chunk every document, embed the chunks alone (naive), with late chunking, and "
                        "each whole document unchunked; rank documents by their best chunk; print nDCG@10, "
                        "Recall@100 and embedding time per setting (the protocol of arXiv 2409.04701, section 4).")
    ev.add_argument("folder", help="BEIR folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    ev.add_argument("--split", default="test", help="qrels file to use (default: test)")
    ev.add_argument("--limit-queries", type=int, help="evaluate only the first N judged queries")
    ev.add_argument("--limit-docs", type=int, help="shrink the corpus to N documents (relevant ones always kept)")
    ev.add_argument("--chunker", nargs="+", choices=["tokens", "sentences", "paragraphs"],
                    default=["tokens", "sentences"], help="chunkings to compare (default: tokens sentences)")
    ev.add_argument("--chunk-size", type=int, default=256, help="tokens per chunk for the tokens chunker")
    ev.add_argument("--settings", nargs="+", choices=["naive", "late", "whole"], default=["naive", "late", "whole"])
    ev.add_argument("--matryoshka", type=int, nargs="*", default=[],
                    help="also score these Matryoshka sizes, e.g. 32 64 128 256 512")
    ev.add_argument("--backend", choices=["local", "api"], default="local")
    ev.add_argument("--model", help="local: folder or hub id (default: jina-embeddings-v3, else the bundled "
                    "MiniLM when offline); api: model name (default: jina-embeddings-v3)")
    ev.add_argument("--base-url", help="api backend: server base URL (default: the Jina API; key in JINA_API_KEY)")
    ev.add_argument("--device", help="local backend: cpu, cuda, mps (default: best available)")
    ev.add_argument("--dtype", help="local backend: " + DTYPE_HELP)
    ev.add_argument("--window", type=int, help="late chunking macro window in tokens (default: the context)")
    ev.add_argument("--overlap", type=int, help="tokens shared by neighbouring macro windows")
    ev.add_argument("--output", "-o", help="write the full report as JSON to this file")
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _embedder(args: argparse.Namespace):  # noqa: ANN202 - lazy import keeps --help fast
    from jinav3.embedder import Embedder
    from jinav3.models import resolve_model

    model, notice = resolve_model(args.model)
    if notice:
        print(notice, file=sys.stderr)
    return Embedder.local(model, device=args.device, dtype=args.dtype)


def _task(args: argparse.Namespace, default: str) -> str | None:
    if args.task is None:
        return default
    return None if args.task == "none" else args.task


def _open_output(path: str | None):  # noqa: ANN202
    return open(path, "w", encoding="utf-8") if path else sys.stdout


def _cmd_embed(args: argparse.Namespace) -> int:
    texts = list(args.texts)
    for file in args.file:
        texts.extend(line for line in Path(file).read_text(encoding="utf-8").splitlines() if line.strip())
    if not texts and not sys.stdin.isatty():
        texts = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not texts:
        raise SystemExit("jinav3 embed: no texts given (pass them as arguments, with --file, or on stdin)")
    embedder = _embedder(args)
    vectors = embedder.embed(texts, _task(args, "retrieval.passage"), args.dimensions, truncate=args.truncate,
                             show_progress=len(texts) > 64)
    if args.format == "npy":
        if not args.output:
            raise SystemExit("jinav3 embed: --format npy needs --output FILE")
        np.save(args.output, vectors)
        return 0
    out = _open_output(args.output)
    try:
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
            out.write(json.dumps({"index": i, "text": text, "embedding": vector.tolist()}, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_chunk(args: argparse.Namespace) -> int:
    documents = [Path(f).read_text(encoding="utf-8") for f in args.files]
    embedder = _embedder(args)
    results = embedder.late_chunk_many(
        documents, chunker=args.chunker, task=_task(args, "retrieval.passage"), dimensions=args.dimensions,
        chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap, show_progress=len(documents) > 1,
    )
    out = _open_output(args.output)
    try:
        for file, chunks in zip(args.files, results, strict=True):
            for c in chunks:
                record = {"source": file, "index": c.index, "start": c.start, "end": c.end, "text": c.text,
                          "embedding": c.embedding.tolist()}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from jinav3.server.app import ServerConfig
        from jinav3.server.run import run_server
    except ImportError as exc:
        raise SystemExit(f"jinav3 serve needs the server extra: pip install 'jinav3[server]' ({exc})") from None
    keys = args.api_key or [k.strip() for k in os.environ.get("JINAV3_SERVE_API_KEY", "").split(",") if k.strip()]
    config = ServerConfig(
        model_name=args.model_name, api_keys=tuple(keys), max_inputs=args.max_inputs,
        max_body_bytes=args.max_body_bytes, max_request_tokens=args.max_request_tokens,
        max_batch_tokens=args.batch_tokens, batch_wait_ms=args.batch_wait_ms, max_pending=args.max_pending,
    )
    embedder = _embedder(args)
    print(f"jinav3 serve: {embedder.model_name} on http://{args.host}:{args.port}/v1/embeddings "
          f"({'Bearer key required' if keys else 'no authentication'})", file=sys.stderr)
    run_server(embedder.backend, config, host=args.host, port=args.port, graceful_timeout=args.graceful_timeout,
               log_level=args.log_level)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from jinav3.embedder import Embedder
    from jinav3.evaluation import EvalConfig, evaluate, format_report, load_beir

    dataset = load_beir(args.folder, args.split, args.limit_queries, args.limit_docs)
    config = EvalConfig(chunkers=tuple(args.chunker), chunk_size=args.chunk_size, settings=tuple(args.settings),
                        dimensions=tuple(args.matryoshka), window=args.window, overlap=args.overlap,
                        show_progress=not args.no_progress)
    if args.backend == "api":
        embedder = Embedder.api(args.model or "jina-embeddings-v3", base_url=args.base_url)
    else:
        embedder = _embedder(argparse.Namespace(model=args.model, device=args.device, dtype=args.dtype))
    report = evaluate(embedder, dataset, config)
    print(format_report(report))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"embed": _cmd_embed, "chunk": _cmd_chunk, "serve": _cmd_serve, "eval": _cmd_eval, "index": run_index}
    try:
        return handlers[args.command](args)
    except (JinaV3Error, OSError) as exc:
        print(f"jinav3 {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
