"""How a chunk's late-chunked vector reaches ``embed_documents``: the chunk's text carries it.

LangChain's ``Document`` has no embedding field, and every vector store embeds with
``embeddings.embed_documents(texts)``, texts only. So the splitter makes each chunk's ``page_content`` a
:class:`LateChunkText`: a ``str`` (equal to the chunk text, usable everywhere a string is) that also holds the
chunk's contextual vector and the vector space it belongs to. Stores hand the very same string objects to
``embed_documents``, which returns the carried vector instead of embedding the text alone.

Why this and not a queue keyed by text: an unrelated caller who embeds an equal *plain* string never receives a
contextual vector (it is a different object); nothing waits anywhere, so no pending state grows or needs releasing
(the vector lives and dies with the chunk); the same chunks added to a second store, or pickled to another process,
still carry their vectors; and two documents containing the same sentence never swap vectors.

What can lose the vector: anything that rebuilds the text as a plain string (``Document(page_content=...)``
validation, ``str(...)``, JSON). A plain string is a request for a plain vector, and gets one; but when it equals a
chunk still alive in this process (:func:`lost_late_chunks`) it may be a chunk that lost its vector on the way, so
``embed_documents`` refuses it inside LangChain's ``index()`` (which always rebuilds documents; use
:func:`langchain_jinav3.index`) and warns elsewhere.

Each chunk also carries where it comes from (``origin``: a digest of its document's text; ``start``: its offset),
so a sync or a cache can tell two equal texts of different contexts apart (:func:`context_key`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document

Vector = list[float]


class LateChunkText(str):
    """A chunk's text that carries its late-chunked vector (``embedding``), ``space`` (model, width, task), and
    its place: ``origin`` (digest of the document's text) and ``start`` (character offset; -1 when unknown)."""

    embedding: np.ndarray
    space: str
    origin: str
    start: int

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and deep-copy) with the vector, so chunks sent to another process keep it."""
        return (_rebuild, (str(self), self.embedding, self.space, self.origin, self.start))


def _rebuild(text: str, embedding: np.ndarray, space: str, origin: str = "", start: int = -1) -> LateChunkText:
    return carrying(text, embedding, space, origin, start)


def digest(text: str) -> str:
    """A short, stable fingerprint of a document's text (sha256, hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def context_key(chunk: LateChunkText, metadata: dict[str, Any] | None = None) -> str:
    """A digest of everything the chunk's vector depends on (space, document, place, text, the vector's bytes) and
    of ``metadata``: equal only for the same chunk of the same document text embedded the same way."""
    material = json.dumps([chunk.space, chunk.origin, chunk.start, str(chunk), metadata or {}], sort_keys=True,
                          default=str)  # dates and other loader metadata: keyed by their text
    return hashlib.sha256(material.encode("utf-8") + np.ascontiguousarray(chunk.embedding).tobytes()).hexdigest()


# Plain text -> a live LateChunkText with that text. Weak values: an entry disappears with the last chunk holding
# it, so this never keeps a vector alive; it only lets embed_documents notice texts that lost their vector.
_LIVE: weakref.WeakValueDictionary[str, LateChunkText] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def carrying(text: str, embedding: Any, space: str, origin: str = "", start: int = -1) -> LateChunkText:
    """``text`` as a :class:`LateChunkText` holding ``embedding`` (stored once, read-only) in vector ``space``, cut
    at ``start`` from the document whose text has digest ``origin``."""
    chunk = LateChunkText(text)
    vector = np.array(embedding, copy=True)
    vector.setflags(write=False)
    chunk.embedding = vector
    chunk.space = space
    chunk.origin = origin
    chunk.start = start
    with _LOCK:
        _LIVE[str(text)] = chunk
    return chunk


def with_late_chunk(document: Document, embedding: Any, space: str, origin: str = "", start: int = -1) -> Document:
    """``document`` whose ``page_content`` carries ``embedding``. Assigned after construction: pydantic validation
    would turn the string back into a plain ``str``."""
    document.page_content = carrying(document.page_content, embedding, space, origin, start)
    return document


def with_carried(document: Document, chunk: LateChunkText) -> Document:
    """``document`` (a rebuilt copy of ``chunk``'s Document) carrying ``chunk``'s vector again."""
    if document.page_content != chunk:
        raise ValueError(f"document text {document.page_content[:40]!r} is not the chunk {chunk[:40]!r}")
    document.page_content = chunk
    return document


def carried_vector(text: str) -> LateChunkText | None:
    """The text itself when it carries a late-chunked vector, else None."""
    return text if isinstance(text, LateChunkText) else None


def lost_late_chunks(texts: Sequence[str]) -> list[str]:
    """Plain strings among ``texts`` equal to a late chunk still alive in this process: chunks whose vector was lost
    on the way to ``embed_documents`` (or, rarely, an unrelated text that happens to be equal)."""
    with _LOCK:
        return [text for text in texts if not isinstance(text, LateChunkText) and text in _LIVE]
