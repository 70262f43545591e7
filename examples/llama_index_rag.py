"""LlamaIndex RAG retrieval with jina-embeddings-v3: late-chunk a folder of documents, then query the index.

    python examples/llama_index_rag.py                 # jina-v3 if cached/reachable, else a small offline model
    python examples/llama_index_rag.py --model PATH    # any folder or hub id
    python examples/llama_index_rag.py "Which city was divided by a wall?"
    python examples/llama_index_rag.py --qdrant ./qdrant    # index into local Qdrant (llama-index-vector-stores-qdrant)
    python examples/llama_index_rag.py --qdrant ./qdrant "Which city was divided by a wall?"   # ... query it later

The node parser embeds every document whole, once, and gives each SentenceSplitter chunk the mean of its tokens'
vectors; the index (in memory, or a Qdrant collection on disk) keeps those vectors. Queries go through the same
model with the retrieval.query adapter. With ``--qdrant`` a later run (a fresh process) only answers the queries.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _example import COLLECTION, parse_args, print_hits, qdrant_collection_exists
from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter

from jinav3.model.choice import display_name
from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser


def late_chunking(embed_model: JinaV3Embedding, chunk_size: int) -> JinaV3LateChunkingNodeParser:
    """The parser that late-chunks each document (every index of this example is built, and reopened, with it)."""
    return JinaV3LateChunkingNodeParser(
        embed_model=embed_model, text_splitter=SentenceSplitter(chunk_size=chunk_size, chunk_overlap=0)
    )


def build_index(embed_model: JinaV3Embedding, folder: Path, chunk_size: int,
                vector_store: Any | None = None) -> VectorStoreIndex:
    """Read ``folder``, late-chunk each document on its own, and index the nodes with their contextual vectors
    (in memory, or in ``vector_store``)."""
    documents = SimpleDirectoryReader(str(folder), required_exts=[".txt"]).load_data()
    parser = late_chunking(embed_model, chunk_size)
    storage = None if vector_store is None else StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex.from_documents(documents, transformations=[parser], embed_model=embed_model,
                                           storage_context=storage)


def qdrant_vector_store(path: Path, recreate: bool) -> Any:
    """llama-index-vector-stores-qdrant on a local Qdrant database at ``path`` (no server)."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    if recreate and client.collection_exists(COLLECTION):
        client.delete_collection(COLLECTION)
    return QdrantVectorStore(client=client, collection_name=COLLECTION)


def main(argv: list[str] | None = None) -> int:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=96, help="SentenceSplitter chunk size (tokens)")

    args, model = parse_args(__doc__.splitlines()[0], argv, top=2, extra=options)
    # strict: this index holds late-chunked vectors only, so the embed model never makes a plain passage vector
    embed_model = JinaV3Embedding(model_name=model, dimensions=args.dimensions, strict_late_chunking=True)
    width = (f"{display_name(embed_model.core.model_name)} "
             f"({embed_model.dimensions or embed_model.core.dimensions} dimensions)")
    if args.qdrant is None:
        index = build_index(embed_model, args.corpus, args.chunk_size)
        print(f"indexed {len(index.docstore.docs)} late-chunked nodes with {width}\n")
    else:
        reuse = qdrant_collection_exists(args.qdrant) and not args.reindex
        vector_store = qdrant_vector_store(args.qdrant, recreate=not reuse)
        if reuse:
            # LlamaIndex does not persist transformations: give the reopened index its parser, so an insert or a
            # refresh late-chunks (without it, the strict embed model would refuse the default splitter's nodes)
            index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model,
                                                       transformations=[late_chunking(embed_model, args.chunk_size)])
        else:
            index = build_index(embed_model, args.corpus, args.chunk_size, vector_store)
        count = vector_store.client.count(COLLECTION).count
        print(f"{'opened' if reuse else 'indexed'} {count} late-chunked nodes in Qdrant at {args.qdrant} "
              f"with {width}\n")
    retriever = index.as_retriever(similarity_top_k=args.top)
    for query in args.queries:
        print_hits(query, (
            (hit.score, hit.node.metadata.get("file_name", "?"), hit.node.start_char_idx, hit.node.end_char_idx,
             hit.node.get_content())
            for hit in retriever.retrieve(query)
        ), model=model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
