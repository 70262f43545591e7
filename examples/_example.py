"""What every example shares: the bundled corpus, the demo queries, the command line and the result printout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from jinav3.model.choice import resolve_model

CORPUS = Path(__file__).parent / "corpus"
#: The collection (Haystack: index) the examples write to in a local Qdrant database (``--qdrant PATH``).
COLLECTION = "jinav3_example"
QUERIES = [
    "Which city was divided by a wall?",
    "Wo steht die Elbphilharmonie?",
    "Quelle ville est connue pour la soie ?",
    "日本の古い都はどこですか？",
    "Which airport replaced Tegel?",
]


def parse_args(
    description: str,
    argv: list[str] | None,
    top: int = 3,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, str]:
    """Parse ``--model/--corpus/--dimensions/--top`` and queries; resolve the model the quickstart's way
    (printing the one-line notice when it falls back to the small offline model)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", help="model folder or hub id")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of .txt documents")
    parser.add_argument("--dimensions", type=int, default=None, help="Matryoshka size (e.g. 256)")
    parser.add_argument("--top", type=int, default=top)
    parser.add_argument("--qdrant", type=Path, metavar="PATH",
                        help="store the chunks in a local Qdrant database at PATH (no server needed); when it already "
                             "holds the collection, only answer the queries from it (needs the framework's Qdrant "
                             "integration: qdrant-haystack, llama-index-vector-stores-qdrant or langchain-qdrant)")
    parser.add_argument("--reindex", action="store_true", help="with --qdrant: rebuild the collection")
    parser.add_argument("queries", nargs="*", help="queries (default: a built-in multilingual set)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if not sorted(args.corpus.glob("*.txt")):
        parser.error(f"no .txt documents in {args.corpus}")
    args.queries = args.queries or QUERIES
    model, notice = resolve_model(args.model)
    if notice:
        print(notice, file=sys.stderr)
    return args, model


def qdrant_collection_exists(path: Path) -> bool:
    """Whether the local Qdrant database at ``path`` holds the examples' collection (the client is closed again:
    local mode allows one client per folder at a time)."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        return client.collection_exists(COLLECTION)
    finally:
        client.close()


def print_hits(query: str, hits: Iterable[tuple[float, str, int, int, str]], seconds: float | None = None) -> None:
    """One query and its ``(score, source, start, end, text)`` hits (and how long the search took, if given)."""
    print(f"query: {query}" + ("" if seconds is None else f"  ({seconds * 1000:.0f} ms)"))
    for score, source, start, end, text in hits:
        print(f"  {score:.3f}  {source}[{start}:{end}]  {text.replace(chr(10), ' ')[:90]}")
    print()
