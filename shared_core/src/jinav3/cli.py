"""The ``jinav3`` command: embed texts or late-chunk files from the shell.

Arguments, input files and the model's width are checked before any weights are loaded; a user error is one line
on standard error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from jinav3.cli_inputs import (
    STDIN,
    Text,
    UsageError,
    check_argument_text,
    check_encoding,
    check_language_argument,
    check_output_path,
    line_texts,
    read_stdin,
    read_text_file,
)
from jinav3.distributed.cli import add_index_parser, run_index
from jinav3.errors import InputTooLongError, InvalidInputError, JinaV3Error, ModelLoadError, NoTaskAdaptersWarning
from jinav3.late_chunking.windows import MIN_WINDOW
from jinav3.runtime import openmp
from jinav3.runtime.settings import DEVICE_NAMES, DTYPE_HELP, ENGINES, check_engine_precision
from jinav3.tasks import TASKS

#: Above this many characters in all, ``jinav3 chunk`` shows progress bars (late chunking is a minute per ~100k
#: characters of jina-embeddings-v3 on a laptop CPU).
_CHUNK_PROGRESS_CHARS = 20_000


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``minimum``, with a message naming the bound."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    parse.__name__ = "integer"
    return parse


def _number_at_least(minimum: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if not number >= minimum:  # also rejects nan
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {value}")
        return number

    parse.__name__ = "number"
    return parse


def _port(value: str) -> int:
    number = _int_at_least(0)(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {number}")
    return number


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in ``--help``, unless its help already names it or it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or not shows_default(action):
            return text
        return super()._get_help_string(action)


def shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` should name ``action``'s default: any value but none, a flag's False and an empty list
    (a 0 default is shown: ``0 in (False,)`` would hide it)."""
    default = action.default
    return not (default is None or default is False or default is argparse.SUPPRESS or default == [])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jinav3")
    except PackageNotFoundError:
        return "unknown (the jinav3 distribution is not installed; running from a source tree)"


DEVICE_HELP = f"{DEVICE_NAMES} (default: the best available)"
ENGINE_HELP = ("local model engine: torch (default), onnx (ONNX Runtime on the folder's onnx/model.onnx, no torch; "
               "write one with jinav3 export-onnx) or openvino (OpenVINO on the same file, no torch)")

SERVE_ENGINE_HELP = (". For a CPU server, --engine openvino --dtype int8 is the fastest (about 3x torch float32 on "
                     "jina-embeddings-v3, docs/performance.md), with vectors equal to the same engine in-process, "
                     "and the graph engines answer queries on an express lane beside heavy requests; "
                     "torch stays the default because it runs any folder or hub id as it is, while openvino needs "
                     "the exported onnx/model.onnx and the openvino extra, and its first int8 start writes the int8 "
                     "graph (about 20 s and 5 GB of memory for jina-embeddings-v3)")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or hub id (default: jina-embeddings-v3, else a small "
                        "bundled model when offline)")
    parser.add_argument("--task", choices=[*TASKS, "none"], help="task adapter (default depends on the command)")
    parser.add_argument("--dimensions", type=_int_at_least(1),
                        help="Matryoshka size, 1..the model's width (jina-embeddings-v3: 1024; trained: 32..1024)")
    parser.add_argument("--encoding", type=check_encoding, default="utf-8",
                        help="text encoding of the input files and standard input")
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--dtype", help=DTYPE_HELP)
    parser.add_argument("--engine", choices=ENGINES, default="torch", help=ENGINE_HELP)
    parser.add_argument("--output", "-o", help="output file (default: standard output)")


class _SubParser(argparse.ArgumentParser):
    """Every parser of the command: its defaults in ``--help``, and a wrong argument is one line on standard error
    (exit status 2) that points at ``--help`` instead of argparse's usage block."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _SubParser(
        prog="jinav3",
        description="jina-embeddings-v3 with task adapters, late chunking and Matryoshka dimensions.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubParser)

    embed = sub.add_parser("embed", help="embed texts (arguments, files or stdin lines) into JSONL or .npy",
                           description="Embed each text; one JSONL record {index, text, embedding} per text, "
                           "or a (n, d) float32 array with --format npy.")
    embed.add_argument("texts", nargs="*", help="texts to embed (omit to read --file or standard input)")
    embed.add_argument("--file", "-f", action="append", default=[], help="a text file; every line is one text")
    embed.add_argument("--format", choices=["jsonl", "npy"], default="jsonl",
                       help="jsonl: one record per text on standard output or --output; npy: one (n, d) float32 "
                       "array, needs --output")
    embed.add_argument("--truncate", action="store_true", help="cut texts longer than the context instead of failing")
    _add_model_options(embed)

    chunk = sub.add_parser("chunk", help="late-chunk whole files into JSONL chunks with spans and vectors",
                           description="Each file is one document: it is embedded whole, then cut into chunks "
                           "whose vectors keep the document's context. One JSONL record per chunk.")
    chunk.add_argument("files", nargs="+", help="text files, one document each")
    chunk.add_argument("--chunker", choices=["sentences", "paragraphs", "tokens"], default="sentences",
                       help="how each file is cut into chunks")
    chunk.add_argument("--chunk-size", type=_int_at_least(1), default=256, help="tokens per chunk for --chunker tokens")
    chunk.add_argument("--chunk-overlap", type=_int_at_least(0), default=0,
                       help="tokens shared by neighbouring token chunks (less than --chunk-size)")
    chunk.add_argument("--language", type=check_language_argument, default="auto",
                       help="the sentences chunker's language: an ISO 639 code such as de, or auto to detect it per "
                       "document (default: %(default)s)")
    _add_model_options(chunk)

    export = sub.add_parser("export-onnx", help="write a checkpoint as onnx/model.onnx for --engine onnx",
                            description="Write CHECKPOINT (folder or hub id) into the new folder OUT in the layout "
                            "of the jina-embeddings-v3 repository's ONNX export (onnx/model.onnx with its weights in "
                            "onnx/model.onnx_data; inputs input_ids, attention_mask and, for models with task "
                            "adapters, task_id), with the tokenizer and config files, so OUT loads with --engine "
                            "onnx. Needs torch (the local extra); running OUT does not.")
    export.add_argument("checkpoint", help="model folder or hub id")
    export.add_argument("out", help="a new (or empty) folder")
    export.add_argument("--overwrite", action="store_true", help="write into OUT even if it is not empty")

    serve = sub.add_parser("serve", help="serve the Jina Embeddings API contract (POST /v1/embeddings) over HTTP",
                           description="A self-hosted, Jina-compatible embeddings server on the local model, with "
                           "micro-batching across concurrent requests. Needs the server extra (fastapi, uvicorn).")
    serve.add_argument("--model", help="model folder or hub id (default: jina-embeddings-v3, else a small "
                       "bundled model when offline)")
    serve.add_argument("--device", help=DEVICE_HELP)
    serve.add_argument("--dtype", help=DTYPE_HELP)
    serve.add_argument("--engine", choices=ENGINES, default="torch", help=ENGINE_HELP + SERVE_ENGINE_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port (0: a free one, printed at start)")
    serve.add_argument("--api-key-file", action="append", default=[], metavar="PATH",
                       help="accept only requests with 'Authorization: Bearer KEY' for a KEY in this file (one per "
                       "line; repeatable). Default: the comma-separated keys in $JINAV3_SERVE_API_KEY, else no "
                       "authentication")
    serve.add_argument("--api-key", action="append", default=[],
                       help="a key on the command line (repeatable); discouraged: any local user can read it with "
                       "ps. Use --api-key-file or $JINAV3_SERVE_API_KEY")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a name clients may send in the Host header (repeatable; '*' = any). Default: the "
                       "loopback names on a loopback --host (against DNS rebinding), any name otherwise")
    serve.add_argument("--model-name",
                       help="the model name clients send and the server reports (default: jina-embeddings-v3 for a "
                       "jina-v3 checkpoint, else the model's own name, e.g. all-MiniLM-L6-v2)")
    serve.add_argument("--max-inputs", type=_int_at_least(1), default=2048,
                       help="inputs per request")
    serve.add_argument("--max-request-tokens", type=_int_at_least(1), help="tokens per request, all inputs together "
                       "(default: no limit beyond max-inputs x the model's context)")
    serve.add_argument("--max-body-bytes", type=_int_at_least(1), default=32 * 1024 * 1024,
                       help="request body size limit")
    serve.add_argument("--batch-tokens", type=_int_at_least(1), default=65_536,
                       help="tokens gathered from concurrent requests into one round of forward passes")
    serve.add_argument("--batch-wait-ms", type=_number_at_least(0), default=0.0,
                       help="milliseconds an idle server waits for more requests to share a batch (0: none; "
                       "requests arriving during a batch share the next one anyway)")
    serve.add_argument("--express-tokens", type=_int_at_least(0), default=64,
                       help="requests of at most this many tokens (a query or two) are computed on an express lane "
                       "beside a heavy request instead of after it (--engine onnx and openvino; 0 = off)")
    serve.add_argument("--max-pending", type=_int_at_least(1), default=100_000,
                       help="inputs allowed to wait; beyond it requests get 503 with Retry-After")
    serve.add_argument("--max-queue-seconds", type=_number_at_least(0), default=60.0,
                       help="estimated seconds of queued work (tokens / measured tokens per second) beyond which "
                       "requests get 503 with Retry-After at once (0 = no bound)")
    serve.add_argument("--graceful-timeout", type=_number_at_least(0), default=30.0,
                       help="seconds to let in-flight requests finish on SIGTERM/SIGINT; the rest get 503")
    serve.add_argument("--header-timeout", type=_number_at_least(0.1), default=10.0,
                       help="seconds a client has to send a complete request head")
    serve.add_argument("--body-timeout", type=_number_at_least(0.1), default=30.0,
                       help="seconds a client has to send a request body")
    serve.add_argument("--keep-alive-timeout", type=_number_at_least(0.1), default=5.0,
                       help="idle seconds before a kept-alive connection is closed")
    serve.add_argument("--max-connections", type=_int_at_least(1), default=1024,
                       help="open connections; more are answered 503 and closed")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="server log detail (debug adds one line per request)")
    _add_eval_parser(sub)
    add_index_parser(sub)
    return parser


def _add_eval_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="retrieval evaluation on a BEIR folder: naive vs late chunking vs whole documents",
                        description="Chunk every document, embed the chunks alone (naive), with late chunking, and "
                        "each whole document unchunked; rank documents by their best chunk; print nDCG@10, "
                        "Recall@100 and embedding time per setting (the protocol of arXiv 2409.04701, section 4). "
                        "Raw full-width vectors are cached, so a rerun with other --matryoshka sizes or "
                        "--embedding-types re-uses them.")
    ev.add_argument("folder", help="BEIR folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    ev.add_argument("--split", default="test", help="qrels file to use (default: test)")
    ev.add_argument("--limit-queries", type=_int_at_least(1), help="evaluate only the first N judged queries")
    ev.add_argument("--limit-docs", type=_int_at_least(1),
                    help="shrink the corpus to N documents (relevant ones always kept)")
    ev.add_argument("--chunker", nargs="+", choices=["tokens", "sentences", "paragraphs"],
                    default=["tokens", "sentences"], help="chunkings to compare (default: tokens sentences)")
    ev.add_argument("--chunk-size", type=_int_at_least(1), nargs="+", default=[256],
                    help="tokens per chunk for the tokens chunker; several sizes compare several chunkings")
    ev.add_argument("--settings", nargs="+", choices=["naive", "late", "whole"], default=["naive", "late", "whole"],
                    help="what to compare: chunks embedded alone, late chunking, whole documents")
    ev.add_argument("--matryoshka", type=_int_at_least(1), nargs="*", default=[],
                    help="also score these Matryoshka sizes, e.g. 32 64 128 256 512")
    ev.add_argument("--embedding-types", nargs="+", choices=["float", "binary", "ubinary"], default=["float"],
                    help="encodings to score: float by cosine, binary/ubinary (packed sign bits) by Hamming distance")
    ev.add_argument("--backend", choices=["local", "api"], default="local",
                    help="local: the model in this process; api: the Jina API or a jinav3 serve server")
    ev.add_argument("--model", help="local: folder or hub id (default: jina-embeddings-v3, else the bundled "
                    "MiniLM when offline); api: model name (default: jina-embeddings-v3)")
    ev.add_argument("--base-url", help="api backend: server base URL (default: the Jina API; key in JINA_API_KEY)")
    ev.add_argument("--tokenizer", help="api backend: the served model's folder, whose tokenizer cuts the token "
                    "chunks (the api backend has no tokenizer of its own)")
    ev.add_argument("--full-dimensions", type=_int_at_least(1), default=1024,
                    help="api backend: the served model's width (default: 1024, jina-embeddings-v3)")
    ev.add_argument("--device", help="local backend: " + DEVICE_HELP)
    ev.add_argument("--dtype", help="local backend: " + DTYPE_HELP)
    ev.add_argument("--engine", choices=ENGINES, default="torch", help="local backend: " + ENGINE_HELP)
    ev.add_argument("--window", type=_int_at_least(MIN_WINDOW),
                    help="late chunking macro window in tokens (default: the model's context)")
    ev.add_argument("--overlap", type=_int_at_least(0), help="tokens shared by neighbouring macro windows "
                    "(less than --window; default: a quarter of the window, at most 512)")
    ev.add_argument("--cache-dir", help="where raw vectors are cached (default: $JINAV3_CACHE/eval, else "
                    "~/.cache/jinav3/eval)")
    ev.add_argument("--no-cache", action="store_true", help="neither read nor write cached vectors")
    ev.add_argument("--output", "-o", help="write the full report as JSON to this file")
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")


_PYTHON_OPTION = re.compile(r"\b(engine|dtype|device)=(['\"])([^'\"]*)\2")


def _in_cli_words(message: str) -> str:
    """A Python-level message in command-line words: ``engine='onnx'`` -> ``--engine onnx`` (the core's errors
    name the Python arguments)."""
    return _PYTHON_OPTION.sub(r"--\1 \3", message)


def _cpu_only_torch() -> str | None:
    """The installed torch's version when its distribution says it is a CPU-only build (``2.13.0+cpu``), read from
    its metadata without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("torch")
    except PackageNotFoundError:
        return None
    return installed if installed.endswith("+cpu") else None


def _check_arguments(args: argparse.Namespace) -> None:
    """Every argument check that needs neither torch nor the model, before either is loaded: precision and device
    names and what the engine runs, a GPU asked of a CPU-only torch, eval's windows, export-onnx's target."""
    engine = getattr(args, "engine", "torch")
    dtype, device = getattr(args, "dtype", None), getattr(args, "device", None)
    try:
        check_engine_precision(engine, dtype, device)
    except InvalidInputError as exc:
        raise UsageError(_in_cli_words(str(exc))) from None
    cpu_build = _cpu_only_torch() if engine == "torch" and device and device.lower().startswith("cuda") else None
    if cpu_build:
        raise UsageError(f"--device {device}: the installed torch ({cpu_build}) is a CPU-only build; use --device cpu, "
                         "or install a CUDA build of torch (pytorch.org)")
    window, overlap = getattr(args, "window", None), getattr(args, "overlap", None)
    if window is not None and overlap is not None and overlap >= window:
        raise UsageError(f"--overlap ({overlap}) must be less than --window ({window})")
    if args.command == "export-onnx":
        out = Path(args.out).expanduser()
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out} is a file; export-onnx writes a folder")
        if out.is_dir() and any(out.iterdir()) and not args.overwrite:
            raise UsageError(f"{out} exists and is not empty; choose a new folder or pass --overwrite")


def _warn(args: argparse.Namespace, message: str) -> None:
    print(f"jinav3 {args.command}: warning: {message}", file=sys.stderr)


def _resolve_checked(args: argparse.Namespace) -> str:
    """The model to load, after every check that needs no weights: the local extra is installed, and
    ``--dimensions`` fits the model's width (read from its config when it is a folder or cached)."""
    from jinav3.matryoshka import TRAINED_DIMENSIONS, validate_dimensions
    from jinav3.model.choice import check_model_source, display_name, has_task_adapters, model_width, resolve_model
    from jinav3.runtime.extras import require_local

    if getattr(args, "engine", "torch") == "torch":
        require_local(f"jinav3 {getattr(args, 'command', None) or 'eval'}")
    model, notice = resolve_model(args.model)
    check_model_source(model)
    if notice:
        print(notice, file=sys.stderr)
    dimensions = getattr(args, "dimensions", None)
    width = model_width(model) if dimensions is not None else None
    if width is not None:
        try:
            validate_dimensions(dimensions, width, () if has_task_adapters(model) is False else TRAINED_DIMENSIONS)
        except InvalidInputError as exc:
            raise UsageError(f"--dimensions {dimensions} does not fit {display_name(model)}, which gives "
                             f"{width}-dimensional vectors: {exc}") from None
    return model


def _embedder(args: argparse.Namespace, model: str | None = None):  # noqa: ANN202 - lazy import keeps --help fast
    """Load the local model (``model`` when already resolved by :func:`_resolve_checked`) and warn about a
    ``--task`` it cannot honour."""
    from jinav3.embedder import Embedder

    embedder = Embedder.local(model or _resolve_checked(args), device=args.device, dtype=args.dtype,
                              engine=getattr(args, "engine", "torch"))
    task = getattr(args, "task", None)
    if task not in (None, "none") and not embedder.backend.tasks:
        from jinav3.model.choice import display_name

        _warn(args, f"{display_name(embedder.model_name)} has no task adapters, so --task {task} changes nothing "
                    "(use jina-embeddings-v3 for task-specific vectors)")
    if not embedder.backend.tasks:  # said above in command-line words, or no --task was given at all
        warnings.filterwarnings("ignore", category=NoTaskAdaptersWarning)
    return embedder


def _task(args: argparse.Namespace, default: str) -> str | None:
    if args.task is None:
        return default
    return None if args.task == "none" else args.task


def _open_output(path: str | None):  # noqa: ANN202
    return open(path, "w", encoding="utf-8") if path else sys.stdout


def _embed_inputs(args: argparse.Namespace) -> list[Text]:
    """Arguments, then every non-blank line of each ``--file``, else of standard input; empty ones get a warning."""
    texts = [Text(check_argument_text(text, i), f"text argument {i + 1}") for i, text in enumerate(args.texts)]
    for file in args.file:
        texts.extend(line_texts(read_text_file(file, args.encoding), file))
    if not texts and not args.file and sys.stdin is not None and not sys.stdin.isatty():
        texts = line_texts(read_stdin(args.encoding), STDIN)
    if not texts:
        raise UsageError("no texts given (pass them as arguments, with --file, or on standard input)")
    for item in texts:
        if not item.text.strip():
            _warn(args, f"{item.source} is empty; its vector encodes no content")
    return texts


_TEXT_INDEX = re.compile(r"\btext (\d+) ")


def _too_long(exc: InputTooLongError, texts: Sequence[Text]) -> UsageError:
    """The backend's too-long error in command-line words: where the text came from, and the --truncate flag."""
    message = str(exc)
    found = _TEXT_INDEX.search(message)
    if found and int(found.group(1)) < len(texts):
        message = message.replace(found.group(0), f"{texts[int(found.group(1))].source} ", 1)
    message = message.replace("truncate=True", "--truncate").replace("late-chunk it", "late-chunk it (jinav3 chunk)")
    return UsageError(message)


def _cmd_embed(args: argparse.Namespace) -> int:
    if args.format == "npy" and not args.output:
        raise UsageError("--format npy needs --output FILE")
    check_output_path(args.output)
    texts = _embed_inputs(args)
    embedder = _embedder(args, _resolve_checked(args))
    try:
        vectors = embedder.embed([t.text for t in texts], _task(args, "retrieval.passage"), args.dimensions,
                                 truncate=args.truncate, show_progress=len(texts) > 64)
    except InputTooLongError as exc:
        raise _too_long(exc, texts) from None
    if args.format == "npy":
        np.save(args.output, vectors)
        return 0
    out = _open_output(args.output)
    try:
        for i, (item, vector) in enumerate(zip(texts, vectors, strict=True)):
            record = {"index": i, "text": item.text, "embedding": vector.tolist()}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_chunk(args: argparse.Namespace) -> int:
    if args.chunker == "tokens" and args.chunk_overlap >= args.chunk_size:
        raise UsageError(f"--chunk-overlap ({args.chunk_overlap}) must be less than --chunk-size ({args.chunk_size})")
    check_output_path(args.output)
    sources = [(file, read_text_file(file, args.encoding)) for file in args.files]
    for file, document in sources:
        if not document.strip():
            _warn(args, f"{file} is empty; it gives no chunks")
    sources = [(file, document) for file, document in sources if document.strip()]
    embedder = _embedder(args, _resolve_checked(args))
    documents = [document for _, document in sources]
    results = embedder.late_chunk_many(
        documents, chunker=args.chunker, task=_task(args, "retrieval.passage"), dimensions=args.dimensions,
        chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap, language=args.language,
        show_progress=len(documents) > 1 or sum(map(len, documents)) >= _CHUNK_PROGRESS_CHARS,
    )
    out = _open_output(args.output)
    try:
        for (file, _), chunks in zip(sources, results, strict=True):
            for c in chunks:
                record = {"source": file, "index": c.index, "start": c.start, "end": c.end, "text": c.text,
                          "embedding": c.embedding.tolist()}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from jinav3.runtime.extras import require_local

    require_local("jinav3 export-onnx")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ModelLoadError("jinav3 export-onnx writes the graph with the onnx package, which is not installed; "
                             "pip install -e 'shared_core[local,onnx-int8]' (at the root of a clone of the jinav3 "
                             "repository)") from None
    from jinav3.model.choice import check_model_source

    check_model_source(args.checkpoint)
    from jinav3.model.onnx_export import export_onnx

    graph = export_onnx(args.checkpoint, args.out, overwrite=args.overwrite)
    print(f"jinav3 export-onnx: wrote {graph} (load the folder with engine='onnx' or --engine onnx)", file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """Every check that needs no weights first (extras, keys, model source, the port), then the model, then the
    server on the sockets bound before the load."""
    from jinav3.runtime.extras import missing_modules, require_local

    if args.engine == "torch":
        require_local("jinav3 serve")
    missing = missing_modules(("fastapi", "uvicorn", "prometheus_client"))
    if missing:
        raise UsageError(f"jinav3 serve needs {' and '.join(missing)}: pip install -e 'shared_core[server]' (at the "
                         "root of a clone of the jinav3 repository)")
    from jinav3.server.keys import resolve_keys
    from jinav3.server.run import bind_sockets, run_server

    try:
        keys, warnings = resolve_keys(args.api_key, args.api_key_file, os.environ)
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    for warning in warnings:
        print(warning, file=sys.stderr)
    model = _resolve_checked(args)
    sockets = bind_sockets(args.host, args.port)
    try:
        embedder = _embedder(args, model)
        from jinav3.model.choice import display_name
        from jinav3.server.app import ServerConfig

        config = ServerConfig(
            model_name=args.model_name, api_keys=tuple(keys), max_inputs=args.max_inputs,
            max_body_bytes=args.max_body_bytes, max_request_tokens=args.max_request_tokens,
            max_batch_tokens=args.batch_tokens, batch_wait_ms=args.batch_wait_ms, max_pending=args.max_pending,
            express_tokens=args.express_tokens,
            max_queue_seconds=args.max_queue_seconds or None,
            header_timeout=args.header_timeout, body_timeout=args.body_timeout,
            keep_alive_timeout=args.keep_alive_timeout, max_connections=args.max_connections,
            allowed_hosts=tuple(args.allowed_host) or None,
        )
        port = sockets[0].getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"jinav3 serve: {display_name(embedder.model_name)} on http://{host}:{port}/v1/embeddings "
              f"({'Bearer key required' if keys else 'no authentication'})", file=sys.stderr)
        run_server(embedder.backend, config, host=args.host, port=port, graceful_timeout=args.graceful_timeout,
                   log_level=args.log_level, sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import time

    from jinav3.embedder import Embedder
    from jinav3.evaluation import EvalConfig, VectorCache, default_cache_dir, evaluate, format_report, load_beir

    started = time.perf_counter()
    dataset = load_beir(args.folder, args.split, args.limit_queries, args.limit_docs)
    config = EvalConfig(chunkers=tuple(args.chunker), chunk_sizes=tuple(args.chunk_size),
                        settings=tuple(args.settings), dimensions=tuple(args.matryoshka),
                        embedding_types=tuple(args.embedding_types), window=args.window, overlap=args.overlap,
                        show_progress=not args.no_progress)
    tokenizer = None
    if args.tokenizer:
        from jinav3.backends.local import load_tokenizer
        from jinav3.model.checkpoint import resolve_model_dir

        tokenizer = load_tokenizer(resolve_model_dir(args.tokenizer))
    print(f"jinav3 eval: loaded {args.folder} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    started = time.perf_counter()
    if args.backend == "api":
        embedder = Embedder.api(args.model or "jina-embeddings-v3", base_url=args.base_url,
                                full_dimensions=args.full_dimensions)
    else:
        embedder = _embedder(argparse.Namespace(model=args.model, device=args.device, dtype=args.dtype,
                                               engine=args.engine))
    print(f"jinav3 eval: model ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    context = getattr(embedder.backend, "max_length", None)
    if args.window is not None and context is not None and args.window > context:
        raise UsageError(f"--window {args.window} is longer than the model's context ({context} tokens); pass at most "
                         f"{context}, or omit it")
    cache = VectorCache(None if args.no_cache else (args.cache_dir or default_cache_dir()))
    report = evaluate(embedder, dataset, config, cache=cache, tokenizer=tokenizer)
    print(format_report(report))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error (bad input, missing file or model, the wrong encoding) is one line on
    standard error and exit status 2, an interrupt exit status 130."""
    args = build_parser().parse_args(argv)
    handlers = {"embed": _cmd_embed, "chunk": _cmd_chunk, "serve": _cmd_serve, "eval": _cmd_eval, "index": run_index,
                "export-onnx": _cmd_export_onnx}
    try:
        _check_arguments(args)
        openmp.prepare(getattr(args, "dtype", None))  # before anything imports torch (see jinav3.runtime.openmp)
        return handlers[args.command](args)
    except (JinaV3Error, OSError, UnicodeError) as exc:
        message = _in_cli_words(" ".join(str(exc).split())) or type(exc).__name__
        print(f"jinav3 {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jinav3 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
