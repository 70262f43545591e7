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
validation, ``str(...)``, JSON). ``embed_documents`` then embeds it plainly and, when the text equals a chunk that is
still alive in this process, warns (:func:`lost_late_chunks`): that is where a plain vector would be stored where a
contextual one was expected.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document

Vector = list[float]


class LateChunkText(str):
    """A chunk's text that carries its late-chunked vector (``embedding``) and ``space`` (model, width, task)."""

    embedding: np.ndarray
    space: str

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and deep-copy) with the vector, so chunks sent to another process keep it."""
        return (_rebuild, (str(self), self.embedding, self.space))


def _rebuild(text: str, embedding: np.ndarray, space: str) -> LateChunkText:
    return carrying(text, embedding, space)


# Plain text -> a live LateChunkText with that text. Weak values: an entry disappears with the last chunk holding
# it, so this never keeps a vector alive; it only lets embed_documents notice texts that lost their vector.
_LIVE: weakref.WeakValueDictionary[str, LateChunkText] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def carrying(text: str, embedding: Any, space: str) -> LateChunkText:
    """``text`` as a :class:`LateChunkText` holding ``embedding`` (stored once, read-only) in vector ``space``."""
    chunk = LateChunkText(text)
    vector = np.array(embedding, copy=True)
    vector.setflags(write=False)
    chunk.embedding = vector
    chunk.space = space
    with _LOCK:
        _LIVE[str(text)] = chunk
    return chunk


def with_late_chunk(document: Document, embedding: Any, space: str) -> Document:
    """``document`` whose ``page_content`` carries ``embedding``. Assigned after construction: pydantic validation
    would turn the string back into a plain ``str``."""
    document.page_content = carrying(document.page_content, embedding, space)
    return document


def carried_vector(text: str) -> LateChunkText | None:
    """The text itself when it carries a late-chunked vector, else None."""
    return text if isinstance(text, LateChunkText) else None


def lost_late_chunks(texts: Sequence[str]) -> list[str]:
    """Plain strings among ``texts`` equal to a late chunk still alive in this process: chunks whose vector was lost
    on the way to ``embed_documents`` (or, rarely, an unrelated text that happens to be equal)."""
    with _LOCK:
        return [text for text in texts if not isinstance(text, LateChunkText) and text in _LIVE]
