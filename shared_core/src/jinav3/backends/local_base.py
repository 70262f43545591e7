"""The local backend around an engine's forward pass: everything but "token ids + mask + task -> token vectors".

Both engines — torch (:mod:`jinav3.backends.local`) and ONNX Runtime (:mod:`jinav3.backends.onnx_engine`) — share
this: tokenisation with the checkpoint's ``tokenizer.json``, task instructions, grouping by task and token-budget
batching, late chunking with macro windows, pooling. An engine implements :meth:`LocalBase._batches` (and may pool
on its device). Nothing here imports torch, so the ONNX engine runs on an install without it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from jinav3 import late
from jinav3.batching import token_budget_batches
from jinav3.chunking import Span
from jinav3.errors import InputTooLongError, InvalidInputError
from jinav3.model_files import load_tokenizer
from jinav3.preparation import DocumentPreparer, PreparedDocument
from jinav3.tasks import validate_task

# Late-chunking documents are processed in groups of about this many tokens so memory stays bounded.
_LATE_GROUP_TOKENS = 65_536


class Abandoned(Exception):
    """A forward pass stopped because nobody waits for its result (:meth:`LocalBase.stoppable`)."""


def pad_id(tokenizer: Any, config: dict) -> int:
    for token in ("<pad>", "[PAD]"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return int(config.get("pad_token_id") or 0)


class LocalBase:
    """A model in this process behind an engine's forward pass. Thread-safe: forward passes are serialised."""

    engine = ""  # the ``engine=`` word that chose the subclass
    #: Largest share of padding in a batch (:func:`jinav3.batching.token_budget_batches`).
    max_padding = 0.1

    def _setup(
        self,
        model: object,
        folder: Path,
        config: dict,
        *,
        tasks: tuple[str, ...],
        instructions: dict[str, str],
        hidden_size: int,
        max_positions: int | None,
        max_length: int,
        token_budget: int,
        max_batch: int,
    ) -> None:
        """What every engine sets once its model is loaded."""
        self._stop_check = threading.local()  # see stoppable()
        self.tasks = tasks
        self.instructions = instructions
        self.full_dimensions = hidden_size
        self.model_name = str(model)
        self.tokenizer = load_tokenizer(folder, config)
        self.preparer = DocumentPreparer(self.tokenizer, self.instructions if self.tasks else {})
        self._pad_id = pad_id(self.tokenizer, config)
        self.max_length = min(max_length, max_positions) if max_positions else max_length
        self.token_budget = token_budget
        self.max_batch = max_batch
        self._lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------------------
    def instruction(self, task: str | None) -> str:
        return self.preparer.instruction(task)

    def _task_id(self, task: str | None) -> int:
        validate_task(task)
        if task is None or not self.tasks:
            return -1
        if task not in self.tasks:
            raise InvalidInputError(f"task {task!r} has no adapter in this checkpoint (it has {self.tasks})")
        return self.tasks.index(task)

    def dtype_name(self) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "engine": self.engine,
            "model": self.model_name,
            "dtype": self.dtype_name(),
            "max_length": self.max_length,
        }

    def close(self) -> None:
        """Nothing to release; kept for the backend protocol."""

    @contextmanager
    def stoppable(self, should_stop: Callable[[], bool]) -> Iterator[None]:
        """Within this block, this thread's forward passes check ``should_stop()`` before every batch (the torch
        engine: before every encoder layer) and raise :class:`Abandoned` when it is true (a server stops work whose
        clients all left mid-pass)."""
        self._stop_check.function = should_stop
        try:
            yield
        finally:
            self._stop_check.function = None

    def _check_stop(self) -> None:
        function = getattr(self._stop_check, "function", None)
        if function is not None and function():
            raise Abandoned("every caller of this forward pass has gone")

    # -- forward -----------------------------------------------------------------------------------------
    def _plan(self, sequences: Sequence[np.ndarray], task_ids: Sequence[int]) -> list[tuple[int, list[int]]]:
        """(task id, indices) of token-budget batches, one task per batch, tasks in order of first appearance."""
        lengths = [len(s) for s in sequences]
        batches: list[tuple[int, list[int]]] = []
        for task_id in dict.fromkeys(task_ids):
            members = [i for i, t in enumerate(task_ids) if t == task_id]
            for batch in token_budget_batches(
                [lengths[i] for i in members], self.token_budget, self.max_batch, self.max_padding
            ):
                batches.append((task_id, [members[j] for j in batch]))
        return batches

    def _padded(self, sequences: Sequence[np.ndarray], batch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded int64 ids and attention mask (B, L) of the batch's sequences."""
        longest = max(len(sequences[i]) for i in batch)
        ids = np.full((len(batch), longest), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, i in enumerate(batch):
            ids[row, : len(sequences[i])] = sequences[i]
            mask[row, : len(sequences[i])] = 1
        return ids, mask

    def _batches(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool
    ) -> Iterator[tuple[list[int], Any, Any]]:
        """Yield (indices, hidden states (B, L, D), attention mask (B, L)) per batch: the engine's forward pass."""
        raise NotImplementedError

    def _mean_pool(self, hidden: Any, mask: Any) -> np.ndarray:
        """Mean of each row's unmasked token vectors (fp32 accumulation)."""
        weights = np.asarray(mask, dtype=np.float32)[..., None]
        return (np.asarray(hidden, dtype=np.float32) * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)

    def _host(self, hidden: Any) -> np.ndarray:
        """Token vectors as fp32 numpy on the host."""
        return np.asarray(hidden, dtype=np.float32)

    def encode_ids(self, texts: Sequence[str], task: str | None, *, truncate: bool) -> list[np.ndarray]:
        """Token ids of ``instruction + text`` for every text, truncated or rejected past ``max_length``."""
        prefix = self.instruction(task)
        encodings = self.tokenizer.encode_batch([prefix + t for t in texts])
        out: list[np.ndarray] = []
        for index, enc in enumerate(encodings):
            ids = np.asarray(enc.ids, dtype=np.int64)
            if len(ids) > self.max_length:
                if not truncate:
                    raise InputTooLongError(
                        f"text {index} has {len(ids)} tokens, more than max_length={self.max_length}; pass "
                        "truncate=True to cut it, or late-chunk it"
                    )
                ids = np.concatenate([ids[: self.max_length - 1], ids[-1:]])
            out.append(ids)
        return out

    def embed_ids(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool = False
    ) -> np.ndarray:
        """Mean-pooled raw vectors for already tokenised sequences (fp32 accumulation)."""
        result = np.empty((len(sequences), self.full_dimensions), dtype=np.float32)
        for batch, hidden, mask in self._batches(sequences, task_ids, show_progress):
            result[batch] = self._mean_pool(hidden, mask)
        return result

    def token_vectors(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool = False
    ) -> list[np.ndarray]:
        """Per-token output vectors (fp32) of every sequence."""
        out: list[np.ndarray] = [np.empty(0)] * len(sequences)
        for batch, hidden, _ in self._batches(sequences, task_ids, show_progress):
            host = self._host(hidden)
            for row, i in enumerate(batch):
                out[i] = host[row, : len(sequences[i])]
        return out

    def _progress(self, batches: list[tuple[int, list[int]]], show_progress: bool) -> Any:
        return tqdm(batches, desc="embedding", unit="batch", disable=not show_progress)

    # -- protocol ----------------------------------------------------------------------------------------
    def embed(
        self, texts: Sequence[str], task: str | None, *, truncate: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        task_id = self._task_id(task)
        sequences = self.encode_ids(texts, task, truncate=truncate)
        return self.embed_ids(sequences, [task_id] * len(sequences), show_progress)

    def tokenize_document(self, document: str, task: str | None) -> late.TokenizedDocument:
        return self.preparer.tokenize(document, task)

    def prepare(
        self, documents: Sequence[str], spans: Sequence[Sequence[Span]], task: str | None, include_special_tokens: bool
    ) -> list[PreparedDocument]:
        """Tokenise every document with its spans (the CPU half of late chunking)."""
        self._task_id(task)
        return [
            self.preparer.prepare(doc, task, spans=doc_spans, include_special_tokens=include_special_tokens)
            for doc, doc_spans in zip(documents, spans, strict=True)
        ]

    def late_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool = False,
    ) -> list[np.ndarray]:
        prepared = self.prepare(documents, spans, task, include_special_tokens)
        return self.late_chunk_prepared(prepared, window=window, overlap=overlap, show_progress=show_progress)

    def late_chunk_prepared(
        self,
        prepared: Sequence[PreparedDocument],
        *,
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool = False,
    ) -> list[np.ndarray]:
        """Raw contextual vectors of prepared documents, processed in groups of about ``_LATE_GROUP_TOKENS``."""
        window = self.max_length if window is None else window
        if not 16 <= window <= self.max_length:
            raise InvalidInputError(f"window must be between 16 and max_length={self.max_length}, got {window}")
        if overlap is not None and overlap < 0:
            raise InvalidInputError(f"overlap must be at least 0 tokens, got {overlap}")
        results: list[np.ndarray] = []
        group: list[PreparedDocument] = []
        group_tokens = 0
        progress = tqdm(total=len(prepared), desc="late chunking", unit="doc", disable=not show_progress)
        for item in prepared:
            group.append(item)
            group_tokens += item.tokens.length
            if group_tokens >= _LATE_GROUP_TOKENS:
                results.extend(self._late_group(group, window, overlap, show_progress))
                progress.update(len(group))
                group, group_tokens = [], 0
        if group:
            results.extend(self._late_group(group, window, overlap, show_progress))
            progress.update(len(group))
        progress.close()
        return results

    def _plan_windows(
        self, group: Sequence[PreparedDocument], window: int, overlap: int | None
    ) -> tuple[list[list[late.Window]], list[np.ndarray], list[int]]:
        """Window plans of every document of the group, with the sequences and task ids to run."""
        plans: list[list[late.Window]] = []
        sequences: list[np.ndarray] = []
        task_ids: list[int] = []
        for item in group:
            doc = item.tokens
            content_window = window - len(doc.head) - len(doc.tail)
            if content_window < 8:
                raise InvalidInputError(f"window={window} leaves no room for the document after the instruction")
            ov = min(512, content_window // 4) if overlap is None else overlap
            plan = late.plan_windows(len(doc.content), content_window, ov)
            plans.append(plan)
            sequences.extend(late.window_sequences(doc, plan))
            task_ids.extend([self._task_id(item.task)] * len(plan))
        return plans, sequences, task_ids

    def _late_group(
        self, group: Sequence[PreparedDocument], window: int, overlap: int | None, show_progress: bool = False
    ) -> list[np.ndarray]:
        """Run every window of every document of the group in shared batches (never a shared sequence)."""
        plans, sequences, task_ids = self._plan_windows(group, window, overlap)
        outputs = self.token_vectors(sequences, task_ids, show_progress)  # a bar per batch: one long document moves
        pooled: list[np.ndarray] = []
        at = 0
        for item, plan in zip(group, plans, strict=True):
            vectors = late.stitch(item.tokens, plan, outputs[at : at + len(plan)])
            at += len(plan)
            pooled.append(late.pool(vectors, item.tokens, item.pooling))
        return pooled

    async def aembed(self, texts: Sequence[str], task: str | None, *, truncate: bool = False) -> np.ndarray:
        return await asyncio.to_thread(self.embed, texts, task, truncate=truncate)

    async def alate_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
    ) -> list[np.ndarray]:
        return await asyncio.to_thread(
            self.late_chunk,
            documents,
            spans,
            task,
            include_special_tokens=include_special_tokens,
            window=window,
            overlap=overlap,
        )
