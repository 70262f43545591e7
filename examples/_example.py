"""What every example shares: the bundled corpus, the demo queries, the command line and the result printout."""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jinav3 import NoTaskAdaptersWarning
from jinav3.model.choice import display_name, resolve_model
from jinav3.model.files import load_tokenizer, resolve_model_dir

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
    one_line_task_notes(announced=bool(notice))
    return args, model


def one_line_task_notes(announced: bool) -> None:
    """A model without task adapters is said once, in one line: not at all after the fallback notice (which says
    so), else as a ``note:`` line instead of Python's warning block (file path and source line)."""
    if announced:
        warnings.filterwarnings("ignore", category=NoTaskAdaptersWarning)
        return
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, NoTaskAdaptersWarning):
            print(f"note: {message}", file=sys.stderr)
        else:
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show


@functools.cache
def _tokenizer(model: str) -> Any:
    return load_tokenizer(resolve_model_dir(model))


def language_note(model: str, query: str) -> str | None:
    """A one-line note when ``model`` cannot read ``query``'s language: its tokenizer cuts at least half of the
    query's letters into single non-Latin characters or unknown tokens (all-MiniLM-L6-v2, an English model, on
    Japanese or Russian), so its hits for that query come from the model, not from the pipeline."""
    tokens = [token.removeprefix("##") for token in _tokenizer(model).encode(query, add_special_tokens=False).tokens]
    words = [token for token in tokens if any(c.isalpha() for c in token) or token in ("[UNK]", "<unk>")]
    unread = [token for token in words if (len(token) == 1 and not token.isascii()) or token in ("[UNK]", "<unk>")]
    if len(words) < 3 or len(unread) < len(words) / 2:
        return None
    return (f"note: {display_name(model)} reads this query character by character ({len(unread)} of {len(words)} "
            "tokens): it was not trained on its language, so these hits mean little; jina-embeddings-v3 is "
            "multilingual")


def qdrant_collection_exists(path: Path) -> bool:
    """Whether the local Qdrant database at ``path`` holds the examples' collection (the client is closed again:
    local mode allows one client per folder at a time)."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        return client.collection_exists(COLLECTION)
    finally:
        client.close()


def print_hits(query: str, hits: Iterable[tuple[float, str, int, int, str]], seconds: float | None = None,
               model: str | None = None) -> None:
    """One query and its ``(score, source, start, end, text)`` hits (and how long the search took, if given), with
    a note when ``model`` cannot read the query's language."""
    print(f"query: {query}" + ("" if seconds is None else f"  ({seconds * 1000:.0f} ms)"))
    note = language_note(model, query) if model is not None else None
    if note:
        print(f"  {note}")
    for score, source, start, end, text in hits:
        print(f"  {score:.3f}  {source}[{start}:{end}]  {text.replace(chr(10), ' ')[:90]}")
    print()
