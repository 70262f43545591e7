"""The real stores of the LangChain composition tests: InMemoryVectorStore, Qdrant local mode on disk and Chroma's
persistent client, each opened (or reopened) on a folder and read back whole: ``{id: (text, metadata, vector)}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

Record = tuple[str, dict[str, Any], np.ndarray]
KINDS = ("memory", "qdrant", "chroma")


class Opened:
    """One opened store: the LangChain store, how to read it back, how to close it (local Qdrant locks its
    folder; Chroma's client is shared per folder in a process)."""

    def __init__(self, kind: str, store: VectorStore, client: Any = None) -> None:
        self.kind, self.store, self.client = kind, store, client

    def records(self) -> dict[str, Record]:
        if self.kind == "memory":
            return {k: (r["text"], r["metadata"], np.asarray(r["vector"])) for k, r in self.store.store.items()}
        if self.kind == "qdrant":
            points = self.client.scroll("chunks", limit=100_000, with_vectors=True, with_payload=True)[0]
            return {str(p.id): (p.payload["page_content"], p.payload["metadata"], np.asarray(p.vector))
                    for p in points}
        found = self.store.get(include=["embeddings", "metadatas", "documents"])
        return {key: (text, metadata or {}, np.asarray(vector)) for key, text, metadata, vector
                in zip(found["ids"], found["documents"], found["metadatas"], found["embeddings"], strict=True)}

    def close(self) -> None:
        if self.kind == "qdrant":
            self.client.close()


def open_store(kind: str, embeddings: Embeddings, folder: Path, dims: int) -> Opened:
    """``kind`` opened on ``folder`` (created on first use, reopened after)."""
    if kind == "memory":
        return Opened(kind, InMemoryVectorStore(embeddings))
    if kind == "qdrant":
        from langchain_qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient
        from qdrant_client.models import Distance, VectorParams

        client = QdrantClient(path=str(folder / "qdrant"))
        if not client.collection_exists("chunks"):
            client.create_collection("chunks", vectors_config=VectorParams(size=dims, distance=Distance.COSINE))
        return Opened(kind, QdrantVectorStore(client, "chunks", embeddings), client)
    import chromadb
    from chromadb.config import Settings
    from langchain_chroma import Chroma

    client = chromadb.PersistentClient(path=str(folder / "chroma"), settings=Settings(anonymized_telemetry=False))
    return Opened(kind, Chroma(client=client, collection_name="chunks", embedding_function=embeddings), client)


def late_chunked_references(embedder: Any, texts: dict[str, str], records: dict[str, Record],
                            dims: int) -> dict[str, np.ndarray]:
    """A fresh fp32 late chunking, by the core, of every stored chunk's sealed span in its own document (``texts``:
    document text by fingerprint; a chunk whose document is not among them has no reference). A document's spans go
    to the core together: the first and the last chunk of a document also pool its special tokens."""
    from jinav3 import SEAL_KEY, Seal

    by_document: dict[str, list[tuple[str, Seal]]] = {}
    for key, (_text, metadata, _vector) in records.items():
        if SEAL_KEY in metadata:
            seal = Seal.decode(metadata[SEAL_KEY])
            by_document.setdefault(seal.document, []).append((key, seal))
    references: dict[str, np.ndarray] = {}
    for document, sealed in by_document.items():
        if document not in texts:
            continue
        spans = sorted({(seal.start, seal.end) for _, seal in sealed})
        chunks = embedder.late_chunk(texts[document], spans=spans, task="retrieval.passage", dimensions=dims)
        vectors = {(c.start, c.end): c.embedding for c in chunks}
        references.update({key: vectors[(seal.start, seal.end)] for key, seal in sealed})
    return references
