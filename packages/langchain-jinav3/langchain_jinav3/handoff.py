"""A hand-off of late-chunked vectors from the splitter to ``embed_documents``, keyed by chunk text.

LangChain's ``Document`` has no embedding field, and every vector store embeds with
``embeddings.embed_documents(texts)``: texts only, no ids, no metadata. The only thing a chunk carries from the
splitter to the embeddings is its text, so the splitter leaves each chunk's contextual vector here under that
text, and ``embed_documents`` takes it back out. Each text has its own first-in-first-out queue: two documents
that contain the same sentence register two different vectors, and a store adding the chunks in split order gets
each document's own vector back. A vector is handed out once; a later ``embed_documents`` of the same text embeds
it plainly again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

Vector = list[float]


class LateChunkHandOff:
    """Thread-safe ``text -> queue of vectors`` waiting to be picked up by ``embed_documents``."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Vector]] = {}
        self._lock = threading.Lock()

    def put(self, texts: Sequence[str], vectors: Sequence[Vector]) -> None:
        """Register one vector per chunk text, in order."""
        if len(texts) != len(vectors):
            raise ValueError(f"got {len(vectors)} vectors for {len(texts)} chunk texts")
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._queues.setdefault(text, deque()).append(vector)

    def take(self, texts: Sequence[str]) -> list[Vector | None]:
        """For each text, its oldest waiting vector (removed from the queue), or None when none waits."""
        found: list[Vector | None] = []
        with self._lock:
            for text in texts:
                queue = self._queues.get(text)
                if not queue:
                    found.append(None)
                    continue
                found.append(queue.popleft())
                if not queue:
                    del self._queues[text]
        return found

    def give_back(self, texts: Sequence[str], taken: Sequence[Vector | None]) -> None:
        """Undo a :meth:`take` whose embedding call failed, so the vectors are not lost to a retry."""
        with self._lock:
            for text, vector in reversed(list(zip(texts, taken, strict=True))):
                if vector is not None:
                    self._queues.setdefault(text, deque()).appendleft(vector)

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    def __len__(self) -> int:
        """How many vectors wait to be picked up."""
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())
