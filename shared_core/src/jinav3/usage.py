"""How many tokens a call consumed, for frameworks that report it (Haystack's ``meta["usage"]``, as jina-haystack).

Pass a :class:`TokenUsage` as ``usage=`` to :meth:`jinav3.Embedder.embed` / ``late_chunk_many`` (or their async
twins) and the backend adds what the model actually read: the API backend the ``usage.total_tokens`` each answer
reports (the billed count, every request including overlapping ones of a long document); the local backend the
token ids it fed to the model (task instruction and special tokens included; each macro window of a long document
in full), which is what ``jinav3 serve`` reports for the same inputs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenUsage:
    """A running token count; ``complete`` turns False when an answer reported no usage (the count is then a lower
    bound and :meth:`as_openai` returns None rather than a wrong number)."""

    tokens: int = 0
    complete: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, tokens: Any) -> None:
        """Count ``tokens`` (an int ≥ 0); anything else marks the count incomplete."""
        with self._lock:
            if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
                self.tokens += tokens
            else:
                self.complete = False

    def as_openai(self) -> dict[str, int] | None:
        """``{"prompt_tokens": n, "total_tokens": n}`` (an embedding model has no completion tokens), or None."""
        return {"prompt_tokens": self.tokens, "total_tokens": self.tokens} if self.complete else None
