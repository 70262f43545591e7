"""The ``jinav3`` command: embed texts or late-chunk files from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jinav3.errors import JinaV3Error
from jinav3.tasks import TASKS


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or hub id (default: jina-embeddings-v3, else a small "
                        "bundled model when offline)")
    parser.add_argument("--task", choices=[*TASKS, "none"], help="task adapter (default depends on the command)")
    parser.add_argument("--dimensions", type=int, help="Matryoshka size, 1..1024 (trained: 32..1024)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--dtype", help="float32 or bfloat16 (default: bf16 on CUDA, else fp32)")
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
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"embed": _cmd_embed, "chunk": _cmd_chunk}
    try:
        return handlers[args.command](args)
    except (JinaV3Error, OSError) as exc:
        print(f"jinav3 {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
