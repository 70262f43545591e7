"""The five jina-embeddings-v3 tasks, "no task", and the query/document role mapping.

Each task selects one LoRA adapter of the model; the two retrieval tasks also carry an instruction that is
prepended to the text, exactly as the reference ``encode()`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jinav3.errors import InvalidInputError

#: Task names in adapter order (the index is the LoRA bank id in the checkpoint).
TASKS: tuple[str, ...] = (
    "retrieval.query",
    "retrieval.passage",
    "separation",
    "classification",
    "text-matching",
)

#: Instructions of the published config (``task_instructions``); used when a checkpoint does not carry its own.
DEFAULT_INSTRUCTIONS: Mapping[str, str] = {
    "retrieval.query": "Represent the query for retrieving evidence documents: ",
    "retrieval.passage": "Represent the document for retrieval: ",
    "separation": "",
    "classification": "",
    "text-matching": "",
}


def validate_task(task: str | None, valid: tuple[str, ...] = TASKS) -> str | None:
    """Return ``task`` unchanged if it is one of ``valid`` (or None = base weights), else raise."""
    if task is None or task in valid:
        return task
    raise InvalidInputError(
        f"unknown task {task!r}; valid tasks are {', '.join(repr(t) for t in valid)} (or None for no adapter)"
    )


@dataclass(frozen=True)
class RoleTasks:
    """Which task serves which role. Adapters call ``embed_query``/``embed_documents`` and never pick tasks."""

    query: str | None = "retrieval.query"
    document: str | None = "retrieval.passage"

    def __post_init__(self) -> None:
        validate_task(self.query)
        validate_task(self.document)
