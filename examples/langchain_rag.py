"""LangChain RAG retrieval with jina-embeddings-v3: late-chunk a folder of documents, store them, then search.

    python examples/langchain_rag.py                      # in memory; jina-v3 if cached/reachable, else a small model
    python examples/langchain_rag.py --model PATH         # any folder or hub id
    python examples/langchain_rag.py --qdrant ./qdrant    # index into a local Qdrant database (langchain-qdrant) ...
    python examples/langchain_rag.py --qdrant ./qdrant "Which city was divided by a wall?"   # ... query it later

The splitter embeds every document whole, once, and gives each RecursiveCharacterTextSplitter chunk the mean of
its tokens' vectors; each chunk's text carries that vector, so ``add_documents`` on any store (the in-memory one,
or langchain-qdrant's ``QdrantVectorStore``) stores the contextual vectors. Queries use the retrieval.query adapter.
With ``--qdrant`` the collection persists on disk: a later run (a fresh process) only answers the queries.

About the Japanese query ("日本の古い都はどこですか？"): offline, the fallback model is all-MiniLM-L6-v2, an
English-only model (a fifth of kyoto_ja.txt's tokens are [UNK]). It ranks Hamburg or Lyon above Kyoto with plain
chunk vectors too (no late chunking at all: best plain chunk per file, cosine 0.27 Hamburg, 0.32 Lyon, 0.17 Kyoto),
so that ranking comes from the model, not from this pipeline (the output says so under that query). jina-embeddings-v3
is multilingual.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _example import COLLECTION, parse_args, print_hits, qdrant_collection_exists
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter

from jinav3.model.choice import display_name
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter


def load(folder: Path) -> list[Document]:
    """One Document per ``.txt`` file, with its file name as ``source``."""
    return [
        Document(page_content=path.read_text(encoding="utf-8"), metadata={"source": path.name})
        for path in sorted(folder.glob("*.txt"))
    ]


def late_chunks(embeddings: JinaV3Embeddings, documents: list[Document], chunk_size: int) -> list[Document]:
    """Chunks whose texts carry their late-chunked vectors (and ``start_index`` in their document)."""
    boundaries = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=0)
    return JinaV3LateChunkingSplitter(embeddings, boundaries, add_start_index=True).split_documents(documents)


def build_store(embeddings: JinaV3Embeddings, documents: list[Document], chunk_size: int) -> InMemoryVectorStore:
    """Split with late chunking, then add the chunks: the store keeps their contextual vectors."""
    store = InMemoryVectorStore(embeddings)
    store.add_documents(late_chunks(embeddings, documents, chunk_size))
    return store


def qdrant_store(embeddings: JinaV3Embeddings, path: Path, documents: list[Document] | None,
                 chunk_size: int) -> VectorStore:
    """A langchain-qdrant store in local mode at ``path``: built from ``documents``, or opened as it is (None)."""
    from langchain_qdrant import QdrantVectorStore

    if documents is None:
        return QdrantVectorStore.from_existing_collection(embedding=embeddings, collection_name=COLLECTION,
                                                          path=str(path))
    return QdrantVectorStore.from_documents(late_chunks(embeddings, documents, chunk_size), embeddings,
                                            path=str(path), collection_name=COLLECTION, force_recreate=True)


def main(argv: list[str] | None = None) -> int:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=300, help="characters per chunk (at most)")

    args, model = parse_args(__doc__.splitlines()[0], argv, top=2, extra=options)
    # strict: the store holds late-chunked vectors only, so a text that arrives without its carried vector is refused
    embeddings = JinaV3Embeddings(model=model, dimensions=args.dimensions, strict_late_chunking=True)
    width = (f"{display_name(embeddings.core.model_name)} "
             f"({args.dimensions or embeddings.core.dimensions} dimensions)")
    if args.qdrant is None:
        documents = load(args.corpus)
        store: VectorStore = build_store(embeddings, documents, args.chunk_size)
        print(f"stored {len(store.store)} late-chunked chunks of {len(documents)} documents with {width}\n")
    else:
        reuse = qdrant_collection_exists(args.qdrant) and not args.reindex
        store = qdrant_store(embeddings, args.qdrant, None if reuse else load(args.corpus), args.chunk_size)
        count = store.client.count(COLLECTION).count
        verb = "opened" if reuse else "stored"
        print(f"{verb} {count} late-chunked chunks in Qdrant at {args.qdrant} with {width}\n")
    try:
        for query in args.queries:
            print_hits(query, (
                (score, hit.metadata["source"], hit.metadata["start_index"],
                 hit.metadata["start_index"] + len(hit.page_content), hit.page_content)
                for hit, score in store.similarity_search_with_score(query, k=args.top)
            ), model=model)
    finally:
        if args.qdrant is not None:
            store.client.close()  # local mode: release the folder for the next process
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
