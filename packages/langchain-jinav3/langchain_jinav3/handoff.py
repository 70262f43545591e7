"""How a chunk's late-chunked vector reaches ``embed_documents``: the chunk's text carries it, with its seal.

LangChain's ``Document`` has no embedding field, and every vector store embeds with
``embeddings.embed_documents(texts)``, texts only. So the splitter makes each chunk's ``page_content`` a
:class:`LateChunkText`: a ``str`` (equal to the chunk text, usable everywhere a string is) that also holds the
chunk's contextual vector and its seal (:mod:`jinav3.late_chunking.seal`: text, offsets, document, vector and
vector space). Stores hand the very same string objects to ``embed_documents``, which checks the seal and returns the
carried vector instead of embedding the text alone. The same seal sits in the chunk Document's metadata under
``SEAL_KEY``, so it is persisted with the chunk and every later step (``index()``,
:class:`~langchain_jinav3.StoredVectors`) can check the stored vector against it.

Why this and not a queue keyed by text: an unrelated caller who embeds an equal *plain* string never receives a
contextual vector (it is a different object); nothing waits anywhere (the vector lives and dies with the chunk);
the same chunks added to a second store, or pickled to another process, still carry their vectors; and two
documents containing the same sentence never swap vectors.

What loses the vector: anything that rebuilds the text as a plain string (a LangChain text splitter or cleaner after
ours, ``Document(page_content=...)`` validation, LangChain's ``index()``, ``str(...)``, JSON). A plain string is
then a request for a plain vector: a ``strict_late_chunking`` embeddings refuses it; a lenient one embeds it plainly
and warns when it equals a chunk still alive in this process (:func:`lost_late_chunks`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document

from jinav3 import SEAL_KEY, check_seal

Vector = list[float]
#: Chunk ids are UUIDs, which every store accepts (Qdrant takes nothing else).
_NAMESPACE = uuid.UUID("5b0d5a34-8f7e-4bb8-9a52-6c1b3f1ed2a4")


class LateChunkText(str):
    """A chunk's text that carries its late-chunked vector (``embedding``) and ``seal`` (what the vector is valid
    for); ``space`` is the seal's vector space (model, width, task, encoding)."""

    embedding: np.ndarray
    seal: str
    space: str

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and deep-copy) with the vector, so chunks sent to another process keep it."""
        return (carrying, (str(self), self.embedding, self.seal))


def digest(text: str) -> str:
    """A short, stable fingerprint of a text (sha256, hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def context_key(chunk: LateChunkText, metadata: dict[str, Any] | None = None) -> str:
    """A digest of the chunk's seal (space, document, place, text, vector) and of ``metadata``: equal only for the
    same chunk of the same document text embedded the same way, with the same metadata."""
    material = json.dumps([chunk.seal, metadata or {}], sort_keys=True,
                          default=str)  # dates and other loader metadata: keyed by their text
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def chunk_id(chunk: LateChunkText, metadata: dict[str, Any]) -> str:
    """The Document id of a chunk: distinct for equal texts of different documents or places (or metadata), so
    stores and fusion retrievers keep both; the same for the same chunk split again (adding it twice replaces it)."""
    return str(uuid.uuid5(_NAMESPACE, context_key(chunk, metadata)))


# Plain text -> a live LateChunkText with that text. Weak values: an entry disappears with the last chunk holding
# it, so this never keeps a vector alive; it only lets a lenient embed_documents notice texts that lost their vector.
_LIVE: weakref.WeakValueDictionary[str, LateChunkText] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def carrying(text: str, embedding: Any, seal: str) -> LateChunkText:
    """``text`` as a :class:`LateChunkText` holding ``embedding`` (stored once, read-only) and its ``seal``, which
    must hold for that text and vector."""
    vector = np.array(embedding, copy=True)
    checked = check_seal(seal, what=f"the chunk {text[:40]!r}", fix="Split the document again.", text=str(text),
                         vector=vector)
    chunk = LateChunkText(text)
    vector.setflags(write=False)
    chunk.embedding = vector
    chunk.seal = seal
    chunk.space = checked.space
    with _LOCK:
        _LIVE[str(text)] = chunk
    return chunk


def with_late_chunk(document: Document, embedding: Any, seal: str) -> Document:
    """``document`` as a sealed chunk: its ``page_content`` carries ``embedding``, its metadata holds the seal under
    ``SEAL_KEY`` and its id is :func:`chunk_id`. Assigned after construction: pydantic validation would turn the
    string back into a plain ``str``."""
    document.metadata[SEAL_KEY] = seal
    document.page_content = carrying(document.page_content, embedding, seal)
    document.id = chunk_id(document.page_content, document.metadata)
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
