"""``jinav3 index --ray``: the distributed pipeline from the shell. Kept apart from ``jinav3.cli`` so that the main
command only gains two lines, and Ray is imported only when this subcommand runs."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from jinav3.cli_inputs import UsageError, check_language_argument
from jinav3.runtime.settings import DTYPE_HELP, ENGINES
from jinav3.tasks import TASKS


def add_index_parser(sub: Any) -> None:
    """Register the ``index`` subcommand on the ``jinav3`` subparsers."""
    index = sub.add_parser(
        "index", help="late-chunk and embed a corpus on a Ray cluster into Parquet (needs jinav3[ray])",
        description="Read documents (JSON Lines or Parquet with an id and a text column), cut and embed them on a "
        "Ray actor pool that loads the model once per actor, and write one Parquet row per chunk: source_id, "
        "chunk_index, start, end, text, embedding, error, origin. A document or input line that cannot be processed "
        "gets one row with its error, its file and line (origin) and no vector; the summary checks documents in = "
        "indexed + failed, and a finished job leaves a _SUCCESS file. An interrupted job continues with --resume.")
    index.add_argument("sources", nargs="+", help="JSONL/Parquet files or folders (local, s3://, gs://...)")
    index.add_argument("--ray", action="store_true", help="run on Ray (required: this command is the Ray pipeline)")
    index.add_argument("--address", help="Ray cluster to join (e.g. auto, ray://head:10001; default: $RAY_ADDRESS, "
                       "else a local instance)")
    index.add_argument("--output", "-o", required=True, help="output folder for the Parquet files")
    again = index.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace what the output folder holds")
    again.add_argument("--resume", action="store_true",
                       help="continue an interrupted job in the same output folder: documents already written are "
                       "skipped (same settings required)")
    index.add_argument("--errors", help="also write the failed documents as JSONL {source_id, origin, error} to "
                       "this file")
    index.add_argument("--model", help="model folder or hub id (default: jina-embeddings-v3, else a small bundled "
                       "model when offline); must be readable on every node")
    index.add_argument("--task", choices=[*TASKS, "none"], default="retrieval.passage",
                       help="task adapter of the chunk vectors (none: the base weights)")
    index.add_argument("--dimensions", type=int, help="Matryoshka size, 1..1024 (trained: 32..1024)")
    index.add_argument("--chunker", choices=["sentences", "paragraphs", "tokens", "none"], default="sentences",
                       help="how documents are cut; none = one vector per document")
    index.add_argument("--chunk-size", type=int, default=256, help="tokens per chunk for --chunker tokens")
    index.add_argument("--language", type=check_language_argument, default="auto",
                       help="the sentences chunker's language: an ISO 639 code such as de, or auto to detect it per "
                       "document (default: %(default)s)")
    index.add_argument("--chunk-overlap", type=int, default=0, help="tokens shared by neighbouring token chunks")
    index.add_argument("--no-late-chunking", action="store_true", help="embed each chunk on its own instead")
    index.add_argument("--id-column", default="id", help="input column that names each document")
    index.add_argument("--text-column", default="text", help="input column that holds each document's text")
    index.add_argument("--carry", action="append", default=[], metavar="COLUMN",
                       help="copy this input column onto every chunk row (repeatable)")
    index.add_argument("--actors", type=int, default=1, help="model replicas (actor pool size)")
    index.add_argument("--gpus-per-actor", type=float, default=0.0, help="e.g. 1, or 0.5 for two per GPU")
    index.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPU cores Ray reserves for each actor")
    index.add_argument("--batch-size", type=int, default=64, help="documents per batch")
    index.add_argument("--device", help="cpu or cuda (default: cuda when the actor has a GPU)")
    index.add_argument("--dtype", help=DTYPE_HELP)
    index.add_argument("--engine", choices=ENGINES, default="torch",
                       help="torch (default), onnx (ONNX Runtime on the folder's onnx/model.onnx) or openvino "
                       "(OpenVINO on the same file); onnx and openvino: CPU actors")


@contextlib.contextmanager
def _exit_on_signals(started_ray: bool) -> Iterator[None]:
    """While the job runs, SIGTERM and SIGINT unwind the command (exit status 128 + the signal number) through
    the ``finally`` that stops the Ray runtime it started (GCS, raylet, workers), which could otherwise outlive
    the driver."""
    if not started_ray or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_index(args: argparse.Namespace) -> int:
    """Handler of ``jinav3 index``: run the pipeline, print the accounting, exit 1 if documents went missing."""
    if not args.ray:
        raise UsageError("this command is the Ray pipeline: pass --ray (and --address to join a cluster); for a few "
                         "files in this process use 'jinav3 chunk'")
    from jinav3.distributed.options import IndexOptions
    from jinav3.model.choice import check_model_source, resolve_model

    model, notice = resolve_model(args.model)
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if address is None:  # a local Ray instance reads the model here; a cluster's nodes may see other folders
        check_model_source(model)
    if notice:
        print(notice, file=sys.stderr)
    options = IndexOptions(
        model=model, task=None if args.task == "none" else args.task, dimensions=args.dimensions,
        chunker=None if args.chunker == "none" else args.chunker, chunk_size=args.chunk_size, language=args.language,
        chunk_overlap=args.chunk_overlap, late_chunking=not args.no_late_chunking, id_column=args.id_column,
        text_column=args.text_column, carry_columns=tuple(args.carry), device=args.device, dtype=args.dtype,
        actors=args.actors, gpus_per_actor=args.gpus_per_actor, cpus_per_actor=args.cpus_per_actor,
        batch_size=args.batch_size, embedder_options={"engine": args.engine},
    )
    try:
        import ray

        from jinav3.distributed.pipeline import index_corpus
    except ImportError as exc:
        raise UsageError(f"jinav3 index needs the ray extra: pip install -e 'shared_core[ray]' (in a "
                         f"clone of the jinav3 repository; {exc})") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address)
    try:
        with _exit_on_signals(started_here):
            sources = args.sources if len(args.sources) > 1 else args.sources[0]
            summary = index_corpus(sources, args.output, options, overwrite=args.overwrite, resume=args.resume)
    finally:
        if started_here:
            ray.shutdown()
    skipped = f" ({summary.documents_skipped} already written)" if summary.documents_skipped else ""
    print(f"jinav3 index: {summary.documents_in} documents in{skipped}, {summary.documents_indexed} indexed into "
          f"{summary.chunks} chunks, {summary.documents_failed} failed -> {summary.output}", file=sys.stderr)
    for source_id, origin, message in summary.errors[:5]:
        print(f"  failed {source_id if source_id is not None else '(no id)'} at {origin}: {message}", file=sys.stderr)
    if len(summary.errors) > 5:
        print(f"  ... and {len(summary.errors) - 5} more (rows with an error in the output)", file=sys.stderr)
    if args.errors:
        with open(args.errors, "w", encoding="utf-8") as out:
            for source_id, origin, message in summary.errors:
                out.write(json.dumps({"source_id": source_id, "origin": origin, "error": message},
                                     ensure_ascii=False) + "\n")
    if not summary.balanced:
        print("jinav3 index: error: the counts do not add up; some documents are unaccounted for", file=sys.stderr)
        return 1
    return 0
