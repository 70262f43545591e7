"""Late chunking's CPU half: chunk a document, tokenise it with its task instruction, plan the pooling.

A :class:`PreparedDocument` holds numpy arrays and strings only (picklable, no torch), so tokenising can run
where the model is not loaded — a Ray CPU stage, another process — and the forward pass elsewhere
(:meth:`jinav3.Embedder.late_chunk_prepared`). The local backend prepares through the same class, so both ways
give identical vectors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jinav3.errors import InvalidInputError
from jinav3.late_chunking import tokenizing
from jinav3.late_chunking import windows as late
from jinav3.late_chunking.chunking import ChunkerLike, Span, resolve_spans
from jinav3.model.files import load_tokenizer, read_config, resolve_model_dir, task_instructions
from jinav3.runtime.progress import progress_bar
from jinav3.tasks import validate_task


@dataclass(frozen=True)
class PreparedDocument:
    """One document ready for the forward pass: its text, spans, task, tokens and pooling plan."""

    text: str
    spans: tuple[Span, ...]
    task: str | None
    tokens: late.TokenizedDocument
    pooling: late.PoolingPlan


class DocumentPreparer:
    """Tokenizer plus task instructions of one model: everything late chunking needs before the model runs."""

    def __init__(self, tokenizer: Any, instructions: dict[str, str] | None = None) -> None:
        self.tokenizer = tokenizer
        self.instructions = dict(instructions or {})

    @classmethod
    def from_model(cls, model: str | os.PathLike[str]) -> DocumentPreparer:
        """Read a model folder (or hub id)'s tokenizer and config only — no torch, no weights."""
        folder = resolve_model_dir(model)
        config = read_config(folder)
        return cls(load_tokenizer(folder, config), task_instructions(config))

    def instruction(self, task: str | None) -> str:
        """The text prepended for ``task`` (empty for tasks without one and for models without adapters)."""
        return self.instructions.get(task, "") if task else ""

    def tokenize(self, document: str, task: str | None, show_progress: bool | None = False) -> late.TokenizedDocument:
        """The document's tokens after its task's instruction; a text long enough to be tokenised a piece at a time
        reports its progress (:func:`jinav3.runtime.progress.progress_bar`; 20 MB take about a minute)."""
        text = self.instruction(task) + document
        with progress_bar(show_progress if tokenizing.in_pieces(text) else False, total=len(text), desc="tokenising",
                          unit="char", unit_scale=True) as bar:
            ids, offsets, special = tokenizing.encode(self.tokenizer, text, bar.update)  # a piece at a time
        return late.split_encoding(ids, offsets, special, len(text) - len(document))

    def prepare(
        self,
        document: str,
        task: str | None,
        chunker: ChunkerLike = "sentences",
        spans: Sequence[Sequence[int]] | None = None,
        *,
        include_special_tokens: bool = True,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        language: str = "auto",
        show_progress: bool | None = False,
    ) -> PreparedDocument:
        """Chunk (explicit ``spans`` win over ``chunker``; ``language`` as for :class:`jinav3.SentenceChunker`),
        tokenise and plan the pooling of one document."""
        validate_task(task)
        if not isinstance(document, str):
            raise InvalidInputError(f"document must be a string, got {type(document).__name__}")
        found = resolve_spans(document, chunker, spans, self.tokenizer, chunk_size, chunk_overlap, language)
        tokens = self.tokenize(document, task, show_progress)
        plan = late.plan_pooling(tokens, found, include_special_tokens)
        return PreparedDocument(document, tuple(found), task, tokens, plan)
