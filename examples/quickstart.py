"""Quickstart: index a small multilingual corpus with late chunking, then search it with the query task.

    python examples/quickstart.py                 # jina-embeddings-v3 if cached/reachable, else a small offline model
    python examples/quickstart.py --model PATH    # any folder or hub id

Every document is embedded whole, once; each sentence-level chunk then gets the mean of its tokens' vectors, so
"It hosts several universities" still knows it is about Berlin. Queries use the retrieval.query adapter.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from _example import parse_args, print_hits

from jinav3 import Chunk, Embedder, SentenceChunker
from jinav3.model.choice import display_name


def build_index(embedder: Embedder, folder: Path, dimensions: int | None) -> tuple[list[tuple[str, Chunk]], np.ndarray]:
    """Late-chunk every document of ``folder``; return (source, chunk) pairs and their vectors as one matrix."""
    files = sorted(folder.glob("*.txt"))
    documents = [f.read_text(encoding="utf-8") for f in files]
    per_document = embedder.late_chunk_many(documents, chunker=SentenceChunker(min_chars=40), dimensions=dimensions)
    entries = [(f.name, chunk) for f, chunks in zip(files, per_document, strict=True) for chunk in chunks]
    return entries, np.stack([chunk.embedding for _, chunk in entries])


def search(embedder: Embedder, entries: list[tuple[str, Chunk]], matrix: np.ndarray, query: str,
           top: int, dimensions: int | None) -> list[tuple[float, str, Chunk]]:
    scores = matrix @ embedder.embed_query(query, dimensions=dimensions)
    best = np.argsort(-scores)[:top]
    return [(float(scores[i]), *entries[i]) for i in best]


def download_hint(model: str) -> str:
    """Why the first load may take a while, only where it does: a hub model not yet in the local cache (a folder,
    the bundled model among them, is read from disk)."""
    if Path(model).expanduser().exists():
        return ""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return " (from the Hugging Face cache)"
    return " (a first run downloads it; progress bars show the download)"


def say(step: str) -> None:
    """What the quickstart is doing now, on stderr at once (the results go to stdout)."""
    print(f"quickstart: {step}...", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args, model = parse_args(__doc__.splitlines()[0], argv)
    say(f"loading the model {display_name(model)}{download_hint(model)}")
    started = time.perf_counter()
    embedder = Embedder.local(model)
    loaded = time.perf_counter()
    print(f"model {display_name(model)} loaded in {loaded - started:.1f} s")
    files = sorted(args.corpus.glob("*.txt"))
    say(f"indexing {len(files)} documents from {args.corpus}: each embedded whole, then cut into sentences")
    entries, matrix = build_index(embedder, args.corpus, args.dimensions)
    indexed = time.perf_counter()
    print(f"indexed {len(entries)} late-chunked sentences from {len({s for s, _ in entries})} documents "
          f"({matrix.shape[1]} dimensions) in {indexed - loaded:.2f} s\n")
    say(f"searching {len(args.queries)} queries (retrieval.query task), top {args.top} sentences each")
    for query in args.queries:
        began = time.perf_counter()
        hits = search(embedder, entries, matrix, query, args.top, args.dimensions)
        print_hits(query, ((score, source, c.start, c.end, c.text) for score, source, c in hits),
                   seconds=time.perf_counter() - began, model=model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
