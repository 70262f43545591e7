"""Haystack retrieval with jina-embeddings-v3: late-chunked indexing pipeline, query-task search pipeline.

    python examples/haystack_rag.py                 # jina-embeddings-v3 if cached/reachable, else a small offline model
    python examples/haystack_rag.py --model PATH    # any folder or hub id
    python examples/haystack_rag.py "Which airport replaced Tegel?"

Indexing:  TextFileToDocument → JinaV3LateChunkingSplitter → DocumentWriter(InMemoryDocumentStore)
Querying:  JinaV3TextEmbedder (retrieval.query) → InMemoryEmbeddingRetriever

The splitter embeds every file whole, once, and gives each sentence chunk the mean of its tokens' vectors, so the
chunks arrive at the writer with their embeddings; no document embedder is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from haystack import Pipeline
from haystack.components.converters import TextFileToDocument
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.embedders.jinav3 import JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from jinav3.models import resolve_model

CORPUS = Path(__file__).parent / "corpus"
QUERIES = [
    "Which city was divided by a wall?",
    "Wo steht die Elbphilharmonie?",
    "Quelle ville est connue pour la soie ?",
    "日本の古い都はどこですか？",
    "Which airport replaced Tegel?",
]


def indexing_pipeline(model: str, store: InMemoryDocumentStore, dimensions: int | None) -> Pipeline:
    """Files → late-chunked sentence Documents (embedding set) → the document store."""
    pipeline = Pipeline()
    pipeline.add_component("converter", TextFileToDocument())
    pipeline.add_component("splitter", JinaV3LateChunkingSplitter(
        model, chunker="sentences", min_chars=40, dimensions=dimensions, progress_bar=False))
    pipeline.add_component("writer", DocumentWriter(document_store=store))
    pipeline.connect("converter.documents", "splitter.documents")
    pipeline.connect("splitter.documents", "writer.documents")
    return pipeline


def query_pipeline(model: str, store: InMemoryDocumentStore, dimensions: int | None, top: int) -> Pipeline:
    """A question → its retrieval.query vector → the closest chunks."""
    pipeline = Pipeline()
    pipeline.add_component("embedder", JinaV3TextEmbedder(model, task="retrieval.query", dimensions=dimensions))
    pipeline.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=top))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    return pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of .txt documents")
    parser.add_argument("--dimensions", type=int, default=None, help="Matryoshka size (e.g. 256)")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("queries", nargs="*", help="queries (default: a built-in multilingual set)")
    args = parser.parse_args(argv)

    model, notice = resolve_model(args.model)
    if notice:
        print(notice, file=sys.stderr)
    files = sorted(args.corpus.glob("*.txt"))
    if not files:
        parser.error(f"no .txt files in {args.corpus}")

    store = InMemoryDocumentStore()
    indexing_pipeline(model, store, args.dimensions).run({"converter": {"sources": files}})
    print(f"indexed {store.count_documents()} late-chunked sentences from {len(files)} files\n")

    search = query_pipeline(model, store, args.dimensions, args.top)
    for query in args.queries or QUERIES:
        print(f"query: {query}")
        for doc in search.run({"embedder": {"text": query}})["retriever"]["documents"]:
            name = Path(str(doc.meta.get("file_path", "?"))).name
            print(f"  {doc.score:.3f}  {name}[{doc.meta['split_idx_start']}]  {doc.content[:90]}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
