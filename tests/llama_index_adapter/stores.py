"""Real stores for the composition tests (in memory, Qdrant local mode on disk, Chroma persistent on disk), what
each holds, and the independent check: every stored vector is a fresh fp32 late chunking of its own span in its own
current document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from jinav3 import Embedder

STORES = ("memory", "qdrant", "chroma")


def open_store(kind: str, folder: Path) -> Any:
    """A vector store of ``kind`` kept in ``folder`` (reopening the same folder gives the same store)."""
    if kind == "memory":
        return SimpleVectorStore()
    if kind == "qdrant":
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        return QdrantVectorStore(client=QdrantClient(path=str(folder / "qdrant")), collection_name="chunks")
    import chromadb
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(path=str(folder / "chroma"))
    return ChromaVectorStore(chroma_collection=client.get_or_create_collection("chunks"))


def close_store(store: Any) -> None:
    """Let go of the store's files (Qdrant local mode locks its folder)."""
    client = getattr(store, "client", None)
    if client is not None and hasattr(client, "close"):
        client.close()


def stored(store: Any, docstore: Any = None) -> list[tuple[BaseNode, np.ndarray]]:
    """Every (node, vector) the store holds; for an in-memory store the node comes from ``docstore``."""
    if isinstance(store, SimpleVectorStore):
        return [(docstore.get_node(node_id), np.asarray(vector))
                for node_id, vector in store.data.embedding_dict.items()]
    if type(store).__name__ == "QdrantVectorStore":
        if not store.client.collection_exists(store.collection_name):
            return []  # nothing was ever written
        points, _ = store.client.scroll(store.collection_name, limit=100_000, with_vectors=True, with_payload=True)
        return [(metadata_dict_to_node(p.payload), np.asarray(p.vector)) for p in points]
    found = store._collection.get(include=["embeddings", "metadatas", "documents"])
    return [(metadata_dict_to_node(meta, text=text), np.asarray(vector))
            for meta, text, vector in zip(found["metadatas"], found["documents"], found["embeddings"], strict=True)]


def assert_exact(pairs: list[tuple[BaseNode, np.ndarray]], documents: dict[str, str], reference: Embedder,
                 dimensions: int, atol: float = 1e-5) -> None:
    """Each stored vector equals the fp32 late chunking of its node's span in its document's current text, computed
    afresh by the core with the document's stored spans (whether a chunk starts first or ends last decides whether
    it averages ``<s>``/``</s>``); a node of a document that no longer exists, or at a span that is not its text,
    fails."""
    by_document: dict[str, list[tuple[BaseNode, np.ndarray]]] = {}
    for node, vector in pairs:
        assert node.ref_doc_id in documents, f"node {node.node_id} of a document that is gone: {node.ref_doc_id}"
        by_document.setdefault(node.ref_doc_id, []).append((node, vector))
    for doc_id, group in by_document.items():
        document = documents[doc_id]
        spans = [(node.start_char_idx, node.end_char_idx) for node, _ in group]
        for (node, _), (start, end) in zip(group, spans, strict=True):
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            assert document[start:end] == text, f"node {node.node_id} is not its document's text at [{start}, {end})"
        chunks = reference.late_chunk(document, spans=spans, task="retrieval.passage", dimensions=dimensions)
        for (node, vector), chunk in zip(group, chunks, strict=True):
            np.testing.assert_allclose(vector, chunk.embedding, atol=atol,
                                       err_msg=f"node {node.node_id} {node.get_content()[:30]!r}")
