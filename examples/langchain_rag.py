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
import sys
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter

from jinav3.models import resolve_model
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

CORPUS = Path(__file__).parent / "corpus"
QUERIES = [
    "Which city was divided by a wall?",
    "Wo steht die Elbphilharmonie?",
    "Quelle ville est connue pour la soie ?",
    "日本の古い都はどこですか？",
]


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of .txt documents")
    parser.add_argument("--dimensions", type=int, default=None, help="Matryoshka size (e.g. 256)")
    parser.add_argument("--chunk-size", type=int, default=300, help="characters per chunk (at most)")
    parser.add_argument("--top", type=int, default=2)
    parser.add_argument("queries", nargs="*", help="queries (default: a built-in multilingual set)")
    args = parser.parse_args(argv)

    model, notice = resolve_model(args.model)
    if notice:
        print(notice, file=sys.stderr)
    embeddings = JinaV3Embeddings(model=model, dimensions=args.dimensions)
    documents = load(args.corpus)
    if not documents:
        parser.error(f"no .txt documents in {args.corpus}")
    store = build_store(embeddings, documents, args.chunk_size)
    print(f"stored {len(store.store)} late-chunked chunks of {len(documents)} documents with "
          f"{embeddings.core.model_name} ({args.dimensions or embeddings.core.dimensions} dimensions)\n")
    for query in args.queries or QUERIES:
        print(f"query: {query}")
        for hit, score in store.similarity_search_with_score(query, k=args.top):
            start = hit.metadata["start_index"]
            text = hit.page_content.replace("\n", " ")
            print(f"  {score:.3f}  {hit.metadata['source']}[{start}:{start + len(hit.page_content)}]  {text[:90]}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
