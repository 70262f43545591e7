"""``CacheBackedEmbeddings`` in front of ``JinaV3Embeddings``: keys that tell contexts apart, and a refusal of keys
that cannot.

LangChain's cache keys a vector by its text alone. A late chunk's vector depends on its document, so a text-keyed
cache would hand one document's vector to an equal sentence of another, a plain vector to a late chunk, or a
contextual one to a later plain call. :func:`cache_keys` gives keys that cover the vector space and, for a late
chunk, its context (:func:`~langchain_jinav3.handoff.context_key`), so a hit is always the right vector.
``JinaV3Embeddings`` refuses to serve a ``CacheBackedEmbeddings`` built with other keys, or one that keeps query
and document vectors in the same store (a query would get a passage vector).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jinav3 import InvalidInputError
from langchain_jinav3.callers import calling_instance
from langchain_jinav3.handoff import carried_vector, context_key, digest

if TYPE_CHECKING:
    from langchain_jinav3.embeddings import JinaV3Embeddings


class CacheKeys:
    """Key encoder for ``CacheBackedEmbeddings.from_bytes_store(..., key_encoder=cache_keys(embeddings))``."""

    def __init__(self, space: str) -> None:
        self.space = space
        self._prefix = f"jinav3-{digest(space)[:16]}"

    def __call__(self, text: str) -> str:
        chunk = carried_vector(text)
        if chunk is None:
            return f"{self._prefix}-plain-{digest(text)}"
        return f"{self._prefix}-late-{context_key(chunk)}"


def cache_keys(embeddings: JinaV3Embeddings) -> CacheKeys:
    """Cache keys for ``embeddings``: plain texts by their text, late chunks by their context, both in the
    embeddings' vector space (so no ``namespace`` is needed)."""
    return CacheKeys(embeddings.vector_space())


def refuse_unsafe_cache(embeddings: JinaV3Embeddings, *, query: bool) -> None:
    """Raise when a ``CacheBackedEmbeddings`` wrapping ``embeddings`` is the caller and could return a wrong
    vector."""
    wrapper = calling_instance("CacheBackedEmbeddings", "langchain")
    if wrapper is None or wrapper.underlying_embeddings is not embeddings:
        return
    documents, queries = wrapper.document_embedding_store, wrapper.query_embedding_store
    if queries is not None and (queries is documents or _backing(queries) is _backing(documents)):
        raise InvalidInputError(
            "CacheBackedEmbeddings keeps query and document vectors of JinaV3Embeddings in one store, but they come "
            "from different tasks (retrieval.query / retrieval.passage), so a query would get a document's vector: "
            "pass a separate ByteStore as query_embedding_cache (or leave it False)"
        )
    if query:
        return  # queries are plain texts: keyed by text in their own store, a hit is the right vector
    keys = getattr(documents, "key_encoder", None)
    if not isinstance(keys, CacheKeys) or keys.space != embeddings.vector_space():
        raise InvalidInputError(
            "CacheBackedEmbeddings keys its vectors by text alone, so in front of JinaV3Embeddings it would hand a "
            "late chunk's contextual vector to an equal sentence of another document, or a plain vector to a late "
            "chunk: build it with CacheBackedEmbeddings.from_bytes_store(embeddings, store, "
            "key_encoder=langchain_jinav3.cache_keys(embeddings))"
        )


def _backing(store: Any) -> Any:
    """The byte store under an ``EncoderBackedStore`` (or the store itself)."""
    return getattr(store, "store", store)
