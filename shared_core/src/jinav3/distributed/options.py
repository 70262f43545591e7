"""What an indexing run computes (model, task, chunking, output) and how it spreads out (actors, GPUs, batches).

One frozen, picklable value: Ray ships it to every worker, and the CLI builds it from its flags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinav3.errors import InvalidInputError
from jinav3.late_chunking.chunking import Chunker
from jinav3.late_chunking.languages import check_language
from jinav3.matryoshka import check_dimensions
from jinav3.tasks import validate_task

ChunkerOption = str | Chunker | Callable[[str], Any] | None


@dataclass(frozen=True)
class IndexOptions:
    """Settings of a distributed indexing run.

    ``chunker=None`` keeps each document whole (one vector per document: late-chunked over the whole text, or a
    plain embedding with ``late_chunking=False``). With ``late_chunking=False`` each chunk is embedded on its own.
    ``language``: the sentence chunker's rules, ``auto`` (detected per document) or an ISO 639 code.
    ``embedder_options`` go to ``Embedder.local`` (``max_length``, ``token_budget``, ``max_batch``...).
    """

    model: str
    task: str | None = "retrieval.passage"
    dimensions: int | None = None
    chunker: ChunkerOption = "sentences"
    chunk_size: int = 256
    chunk_overlap: int = 0
    language: str = "auto"
    late_chunking: bool = True
    truncate: bool = False
    id_column: str = "id"
    text_column: str = "text"
    carry_columns: tuple[str, ...] = ()
    device: str | None = None
    dtype: str | None = None
    embedder_options: dict[str, Any] = field(default_factory=dict)
    # -- scale: how the work spreads over the cluster ---------------------------------------------------------
    actors: int | tuple[int, int] = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        validate_task(self.task)
        check_language(self.language)
        check_dimensions(self.dimensions)  # the model's own width is checked when it loads
        if self.batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {self.batch_size}")
        sizes = self.actors if isinstance(self.actors, tuple) else (self.actors, self.actors)
        if len(sizes) != 2 or not 1 <= sizes[0] <= sizes[1]:
            raise InvalidInputError(f"actors must be a count >= 1 or a (min, max) pair, got {self.actors!r}")
        if self.gpus_per_actor < 0 or self.cpus_per_actor < 0:
            raise InvalidInputError("gpus_per_actor and cpus_per_actor must not be negative")
        if self.id_column == self.text_column:
            raise InvalidInputError(f"id_column and text_column are both {self.id_column!r}")
        reserved = {"source_id", "chunk_index", "start", "end", "text", "embedding", "error", "origin"}
        clashing = sorted(reserved.intersection(self.carry_columns))
        if clashing:
            raise InvalidInputError(f"carry_columns {clashing} clash with output columns; rename them first")

    @property
    def actor_pool(self) -> tuple[int, int]:
        """``(min_size, max_size)`` of the embedding actor pool."""
        return self.actors if isinstance(self.actors, tuple) else (self.actors, self.actors)
