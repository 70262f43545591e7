"""LlamaIndex RAG retrieval with jina-embeddings-v3: late-chunk a folder of documents, then query the index.

    python examples/llama_index_rag.py                 # jina-v3 if cached/reachable, else a small offline model
    python examples/llama_index_rag.py --model PATH    # any folder or hub id
    python examples/llama_index_rag.py "Which city was divided by a wall?"

The node parser embeds every document whole, once, and gives each SentenceSplitter chunk the mean of its tokens'
vectors; the index keeps those vectors. Queries go through the same model with the retrieval.query adapter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter

from jinav3.models import resolve_model
from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

CORPUS = Path(__file__).parent / "corpus"
QUERIES = [
    "Which city was divided by a wall?",
    "Wo steht die Elbphilharmonie?",
    "Quelle ville est connue pour la soie ?",
    "日本の古い都はどこですか？",
]


def build_index(embed_model: JinaV3Embedding, folder: Path, chunk_size: int) -> VectorStoreIndex:
    """Read ``folder``, late-chunk each document on its own, and index the nodes with their contextual vectors."""
    documents = SimpleDirectoryReader(str(folder), required_exts=[".txt"]).load_data()
    parser = JinaV3LateChunkingNodeParser(
        embed_model=embed_model, text_splitter=SentenceSplitter(chunk_size=chunk_size, chunk_overlap=0)
    )
    return VectorStoreIndex.from_documents(documents, transformations=[parser], embed_model=embed_model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of .txt documents")
    parser.add_argument("--dimensions", type=int, default=None, help="Matryoshka size (e.g. 256)")
    parser.add_argument("--chunk-size", type=int, default=96, help="SentenceSplitter chunk size (tokens)")
    parser.add_argument("--top", type=int, default=2)
    parser.add_argument("queries", nargs="*", help="queries (default: a built-in multilingual set)")
    args = parser.parse_args(argv)

    model, notice = resolve_model(args.model)
    if notice:
        print(notice, file=sys.stderr)
    embed_model = JinaV3Embedding(model_name=model, dimensions=args.dimensions)
    index = build_index(embed_model, args.corpus, args.chunk_size)
    retriever = index.as_retriever(similarity_top_k=args.top)
    print(f"indexed {len(index.docstore.docs)} late-chunked nodes with {embed_model.core.model_name} "
          f"({embed_model.dimensions or embed_model.core.dimensions} dimensions)\n")
    for query in args.queries or QUERIES:
        print(f"query: {query}")
        for hit in retriever.retrieve(query):
            source = hit.node.metadata.get("file_name", "?")
            text = hit.node.get_content().replace("\n", " ")
            print(f"  {hit.score:.3f}  {source}[{hit.node.start_char_idx}:{hit.node.end_char_idx}]  {text[:90]}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
