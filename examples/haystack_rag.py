"""Haystack retrieval with jina-embeddings-v3: late-chunked indexing pipeline, query-task search pipeline.

    python examples/haystack_rag.py                 # jina-embeddings-v3 if cached/reachable, else a small offline model
    python examples/haystack_rag.py --model PATH    # any folder or hub id
    python examples/haystack_rag.py "Which airport replaced Tegel?"
    python examples/haystack_rag.py --qdrant ./qdrant     # index into a local Qdrant database (qdrant-haystack) ...
    python examples/haystack_rag.py --qdrant ./qdrant "Which airport replaced Tegel?"     # ... query it later

Indexing:  TextFileToDocument → JinaV3LateChunkingSplitter → DocumentWriter(InMemoryDocumentStore | QdrantDocumentStore)
Querying:  JinaV3TextEmbedder (retrieval.query) → InMemoryEmbeddingRetriever | QdrantEmbeddingRetriever

The splitter embeds every file whole, once, and gives each sentence chunk the mean of its tokens' vectors, so the
chunks arrive at the writer with their embeddings; no document embedder is needed. With ``--qdrant`` the index
persists on disk: a later run (a fresh process) only answers the queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _example import COLLECTION, parse_args, print_hits, qdrant_collection_exists
from haystack import Pipeline
from haystack.components.converters import TextFileToDocument
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.embedders.jinav3 import JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter


def indexing_pipeline(model: str, store: Any, dimensions: int | None) -> Pipeline:
    """Files → late-chunked sentence Documents (embedding set) → the document store."""
    pipeline = Pipeline()
    pipeline.add_component("converter", TextFileToDocument())
    pipeline.add_component("splitter", JinaV3LateChunkingSplitter(
        model, chunker="sentences", min_chars=40, dimensions=dimensions, progress_bar=False))
    pipeline.add_component("writer", DocumentWriter(document_store=store))
    pipeline.connect("converter.documents", "splitter.documents")
    pipeline.connect("splitter.documents", "writer.documents")
    return pipeline


def qdrant_store(path: Path, dimensions: int, recreate: bool) -> Any:
    """qdrant-haystack's document store in local mode at ``path`` (no server)."""
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    return QdrantDocumentStore(path=str(path), index=COLLECTION, embedding_dim=dimensions, similarity="cosine",
                               recreate_index=recreate)


def retriever_for(store: Any, top: int) -> Any:
    if isinstance(store, InMemoryDocumentStore):
        return InMemoryEmbeddingRetriever(document_store=store, top_k=top)
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever

    return QdrantEmbeddingRetriever(document_store=store, top_k=top)


def query_pipeline(model: str, store: Any, dimensions: int | None, top: int) -> Pipeline:
    """A question → its retrieval.query vector → the closest chunks."""
    pipeline = Pipeline()
    pipeline.add_component("embedder", JinaV3TextEmbedder(model, task="retrieval.query", dimensions=dimensions))
    pipeline.add_component("retriever", retriever_for(store, top))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    return pipeline


def main(argv: list[str] | None = None) -> int:
    args, model = parse_args(__doc__.splitlines()[0], argv)
    files = sorted(args.corpus.glob("*.txt"))
    if args.qdrant is None:
        store: Any = InMemoryDocumentStore()
        indexing_pipeline(model, store, args.dimensions).run({"converter": {"sources": files}})
        print(f"indexed {store.count_documents()} late-chunked sentences from {len(files)} files\n")
    else:
        reuse = qdrant_collection_exists(args.qdrant) and not args.reindex
        width = args.dimensions or JinaV3TextEmbedder(model).embedder.dimensions
        store = qdrant_store(args.qdrant, width, recreate=not reuse)
        if reuse:
            print(f"opened {store.count_documents()} late-chunked sentences in Qdrant at {args.qdrant}\n")
        else:
            indexing_pipeline(model, store, args.dimensions).run({"converter": {"sources": files}})
            print(f"indexed {store.count_documents()} late-chunked sentences from {len(files)} files in Qdrant at "
                  f"{args.qdrant}\n")

    search = query_pipeline(model, store, args.dimensions, args.top)
    for query in args.queries:
        found = search.run({"embedder": {"text": query}})["retriever"]["documents"]
        print_hits(query, (
            (doc.score, Path(str(doc.meta.get("file_path", "?"))).name, doc.meta["split_idx_start"],
             doc.meta["split_idx_start"] + len(doc.content), doc.content)
            for doc in found
        ), model=model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
