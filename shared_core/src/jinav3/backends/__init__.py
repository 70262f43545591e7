"""Backends turn texts into raw (full-width, unnormalised) vectors. The :class:`jinav3.Embedder` does the rest.

``normalized=True`` tells a backend that the caller will normalise the vectors: a local model ignores it; the API
backend then refuses a server's vector that normalisation cannot turn into a unit one (all zeros, a vanishing or
overflowing norm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jinav3.late_chunking.chunking import Span
from jinav3.usage import TokenUsage


@runtime_checkable
class Backend(Protocol):
    """What :class:`jinav3.Embedder` needs from a backend; adapters never see which one they talk to."""

    model_name: str
    full_dimensions: int
    max_length: int
    tasks: tuple[str, ...]  # tasks with adapters; () for plain encoders, which ignore the task
    tokenizer: Any | None  # a ``tokenizers.Tokenizer`` when the backend has one (token chunker, counting)

    def embed(self, texts: Sequence[str], task: str | None, *, truncate: bool, show_progress: bool | None,
              usage: TokenUsage | None = None, normalized: bool = False) -> np.ndarray:
        """One raw vector per text, in input order; the tokens consumed are added to ``usage``."""
        ...

    def late_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool,
        window: int | None,
        overlap: int | None,
        show_progress: bool | None,
        usage: TokenUsage | None = None,
        normalized: bool = False,
    ) -> list[np.ndarray]:
        """For every document, one raw contextual vector per span (documents never share a sequence)."""
        ...

    async def aembed(self, texts: Sequence[str], task: str | None, *, truncate: bool,
                     usage: TokenUsage | None = None, normalized: bool = False) -> np.ndarray: ...

    async def alate_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool,
        window: int | None,
        overlap: int | None,
        usage: TokenUsage | None = None,
        normalized: bool = False,
    ) -> list[np.ndarray]: ...

    def describe(self) -> dict[str, Any]:
        """Settings that identify the backend's output (for cache keys and serialisation); never secrets."""
        ...

    def close(self) -> None: ...
