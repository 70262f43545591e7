"""LlamaIndex RAG retrieval with jina-embeddings-v3: late-chunk a folder of documents, then query the index.

    python examples/llama_index_rag.py                 # jina-v3 if cached/reachable, else a small offline model
    python examples/llama_index_rag.py --model PATH    # any folder or hub id
    python examples/llama_index_rag.py "Which city was divided by a wall?"

The node parser embeds every document whole, once, and gives each SentenceSplitter chunk the mean of its tokens'
vectors; the index keeps those vectors. Queries go through the same model with the retrieval.query adapter.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _example import parse_args, print_hits
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter

from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser


def build_index(embed_model: JinaV3Embedding, folder: Path, chunk_size: int) -> VectorStoreIndex:
    """Read ``folder``, late-chunk each document on its own, and index the nodes with their contextual vectors."""
    documents = SimpleDirectoryReader(str(folder), required_exts=[".txt"]).load_data()
    parser = JinaV3LateChunkingNodeParser(
        embed_model=embed_model, text_splitter=SentenceSplitter(chunk_size=chunk_size, chunk_overlap=0)
    )
    return VectorStoreIndex.from_documents(documents, transformations=[parser], embed_model=embed_model)


def main(argv: list[str] | None = None) -> int:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=96, help="SentenceSplitter chunk size (tokens)")

    args, model = parse_args(__doc__.splitlines()[0], argv, top=2, extra=options)
    embed_model = JinaV3Embedding(model_name=model, dimensions=args.dimensions)
    index = build_index(embed_model, args.corpus, args.chunk_size)
    retriever = index.as_retriever(similarity_top_k=args.top)
    print(f"indexed {len(index.docstore.docs)} late-chunked nodes with {embed_model.core.model_name} "
          f"({embed_model.dimensions or embed_model.core.dimensions} dimensions)\n")
    for query in args.queries:
        print_hits(query, (
            (hit.score, hit.node.metadata.get("file_name", "?"), hit.node.start_char_idx, hit.node.end_char_idx,
             hit.node.get_content())
            for hit in retriever.retrieve(query)
        ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
