"""LangChain RAG retrieval with jina-embeddings-v3: late-chunk a folder of documents, store them, then search.

    python examples/langchain_rag.py                 # jina-v3 if cached/reachable, else a small offline model
    python examples/langchain_rag.py --model PATH    # any folder or hub id
    python examples/langchain_rag.py "Which city was divided by a wall?"

The splitter embeds every document whole, once, and gives each RecursiveCharacterTextSplitter chunk the mean of
its tokens' vectors. ``InMemoryVectorStore.add_documents`` then stores those contextual vectors: the store's
``embed_documents`` call gets them back from the splitter instead of embedding each chunk on its own. Queries
use the retrieval.query adapter.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _example import parse_args, print_hits
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter

from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter


def load(folder: Path) -> list[Document]:
    """One Document per ``.txt`` file, with its file name as ``source``."""
    return [
        Document(page_content=path.read_text(encoding="utf-8"), metadata={"source": path.name})
        for path in sorted(folder.glob("*.txt"))
    ]


def build_store(embeddings: JinaV3Embeddings, documents: list[Document], chunk_size: int) -> InMemoryVectorStore:
    """Split with late chunking, then add the chunks: the store keeps their contextual vectors."""
    boundaries = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=0)
    chunks = JinaV3LateChunkingSplitter(embeddings, boundaries).split_documents(documents)
    store = InMemoryVectorStore(embeddings)
    store.add_documents(chunks)
    return store


def main(argv: list[str] | None = None) -> int:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=300, help="characters per chunk (at most)")

    args, model = parse_args(__doc__.splitlines()[0], argv, top=2, extra=options)
    embeddings = JinaV3Embeddings(model=model, dimensions=args.dimensions)
    documents = load(args.corpus)
    store = build_store(embeddings, documents, args.chunk_size)
    print(f"stored {len(store.store)} late-chunked chunks of {len(documents)} documents with "
          f"{embeddings.core.model_name} ({args.dimensions or embeddings.core.dimensions} dimensions)\n")
    for query in args.queries:
        print_hits(query, (
            (score, hit.metadata["source"], hit.metadata["start_index"],
             hit.metadata["start_index"] + len(hit.page_content), hit.page_content)
            for hit, score in store.similarity_search_with_score(query, k=args.top)
        ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
