"""``CacheBackedEmbeddings`` in front of ``JinaV3Embeddings``: keys that tell contexts apart.

LangChain's cache keys a vector by its text alone. A late chunk's vector depends on its document, so a text-keyed
cache would hand one document's vector to an equal sentence of another, a plain vector to a late chunk, or a
contextual one to a later plain call. :func:`cache_keys` gives keys that cover the vector space and, for a late
chunk, its seal (document, place, text, vector), so a hit is always the right vector.

What cannot be checked: a cache *hit* never reaches the embeddings, and nothing tells the embeddings which cache
(if any) called them without walking the call stack, which we do not do (it fails in threads and processes). So a
cache built with other keys, or ``query_embedding_cache=True`` (queries and passages in one store), is not refused:
the guide's "What composes" table says so. The seal in each stored chunk's metadata still exposes a wrong vector
afterwards (``StoredVectors`` and ``index()`` check it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_jinav3.handoff import carried_vector, digest

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
        return f"{self._prefix}-late-{digest(chunk.seal)}"


def cache_keys(embeddings: JinaV3Embeddings) -> CacheKeys:
    """Cache keys for ``embeddings``: plain texts by their text, late chunks by their seal, both in the embeddings'
    vector space (so no ``namespace`` is needed). Keep queries in a ByteStore of their own."""
    return CacheKeys(embeddings.vector_space())
