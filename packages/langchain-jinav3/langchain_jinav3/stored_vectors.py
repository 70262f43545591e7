"""``StoredVectors``: hand the retrieved chunks' stored vectors to the filters that would re-embed them.

``EmbeddingsRedundantFilter`` and ``EmbeddingsFilter`` (in a ``ContextualCompressionRetriever``) embed the retrieved
Documents' texts again, plainly, unless each Document already holds its vector in ``state["embedded_doc"]``
(LangChain's ``_DocumentWithState``, the one hand-over those filters read). Re-embedded, a late chunk loses its
context: equal sentences of two documents look identical and one is dropped. Put ``StoredVectors(store)`` first in
the ``DocumentCompressorPipeline``: it reads each Document's own vector back from the store, checks it against the
chunk's seal (text and vector) and hands it over, so the filters compare the stored late-chunked vectors. A store
whose embeddings are ``strict_late_chunking`` refuses the plain re-embedding without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import BaseDocumentTransformer, Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from jinav3 import SEAL_KEY, InvalidInputError, check_seal

#: The state key LangChain's embedding filters read a Document's vector from.
STATE_KEY = "embedded_doc"


class StoredVectors(BaseDocumentTransformer):
    """A document transformer that attaches each retrieved Document's stored vector (``state["embedded_doc"]``),
    checked against its seal. Reads InMemoryVectorStore, QdrantVectorStore (langchain-qdrant) and Chroma
    (langchain-chroma); another store is refused by name."""

    def __init__(self, vector_store: VectorStore) -> None:
        if not isinstance(vector_store, VectorStore):
            raise InvalidInputError(f"vector_store must be a LangChain VectorStore, got {type(vector_store).__name__}")
        self.vector_store = vector_store

    def transform_documents(self, documents: Sequence[Document], **kwargs: Any) -> Sequence[Document]:
        """The documents as LangChain's stateful documents, each holding its stored vector."""
        try:
            from langchain_community.document_transformers.embeddings_redundant_filter import _DocumentWithState
        except ImportError as exc:  # the filters that read the state live there too
            raise InvalidInputError("StoredVectors needs langchain-community (where LangChain's embedding filters "
                                    "live): pip install langchain-community") from exc
        ids = [_document_id(document) for document in documents]
        vectors = read_vectors(self.vector_store, ids)
        handed: list[Document] = []
        for document, key in zip(documents, ids, strict=True):
            vector = vectors.get(key)
            if vector is None:
                raise InvalidInputError(f"the retrieved document {key!r} is not in the store (deleted since?)")
            if SEAL_KEY in document.metadata:
                check_seal(document.metadata[SEAL_KEY], what=f"the stored chunk {key!r}",
                           text=str(document.page_content), vector=vector,
                           fix="Re-index its document with langchain_jinav3.index() (or add the splitter's chunks "
                               "again) through strict_late_chunking embeddings.")
            handed.append(_DocumentWithState(  # from_document would drop the id
                id=key, page_content=document.page_content, metadata=document.metadata,
                state={**getattr(document, "state", {}), STATE_KEY: [float(value) for value in vector]},
            ))
        return handed

    async def atransform_documents(self, documents: Sequence[Document], **kwargs: Any) -> Sequence[Document]:
        """The same reads (local stores answer at once)."""
        return self.transform_documents(documents, **kwargs)


def _document_id(document: Document) -> str:
    """The store id of a retrieved Document (``Document.id``; QdrantVectorStore puts it in ``metadata['_id']``)."""
    key = document.id if document.id is not None else document.metadata.get("_id")
    if key is None:
        raise InvalidInputError(f"the retrieved document {document.page_content[:40]!r} has no id, so its stored "
                                "vector cannot be read back: retrieve it from the store StoredVectors reads")
    return str(key)


def read_vectors(store: VectorStore, ids: list[str]) -> dict[str, list[float]]:
    """The stored vector of each id present in ``store`` (Qdrant normalises cosine vectors again on upload, which
    moves their last bits; the seal's vector sketch allows for that)."""
    if isinstance(store, InMemoryVectorStore):
        return {key: store.store[key]["vector"] for key in ids if key in store.store}
    kind = type(store).__name__
    if kind == "QdrantVectorStore":
        if not ids:
            return {}
        points = store.client.retrieve(store.collection_name, ids, with_vectors=True)  # type: ignore[attr-defined]
        name = store.vector_name  # type: ignore[attr-defined]
        return {str(p.id): p.vector[name] if isinstance(p.vector, dict) else p.vector for p in points}
    if kind == "Chroma":
        if not ids:
            return {}
        found = store.get(ids=ids, include=["embeddings"])  # type: ignore[attr-defined]
        return {key: list(vector) for key, vector in zip(found["ids"], found["embeddings"], strict=True)}
    raise InvalidInputError(f"StoredVectors reads vectors back from InMemoryVectorStore, QdrantVectorStore and "
                            f"Chroma, not {kind}: with another store, leave re-embedding filters out of a "
                            "late-chunking retriever")
