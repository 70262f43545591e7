"""The local backend around an engine's forward pass: everything but "token ids + mask + task -> token vectors".

Both engines — torch (:mod:`jinav3.backends.local`) and ONNX Runtime (:mod:`jinav3.backends.onnx_engine`) — share
this: tokenisation with the checkpoint's ``tokenizer.json``, task instructions, grouping by task and token-budget
batching, late chunking with macro windows, pooling. An engine implements :meth:`LocalBase._batches` (and may pool
on its device). Nothing here imports torch, so the ONNX engine runs on an install without it.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from jinav3.errors import InputTooLongError, InvalidInputError, NoTaskAdaptersWarning
from jinav3.late_chunking import windows as late
from jinav3.late_chunking.chunking import Span
from jinav3.late_chunking.preparation import DocumentPreparer, PreparedDocument
from jinav3.model.batching import token_budget_batches
from jinav3.model.choice import display_name
from jinav3.model.files import load_tokenizer
from jinav3.runtime.progress import progress_bar
from jinav3.tasks import validate_task
from jinav3.usage import TokenUsage

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
    #: Whether a forward pass can run on the express lane beside one under way (:meth:`express`): the graph engines
    #: run a second instance of the graph; torch's task adapter is model state, so its passes stay one at a time.
    runs_beside = False
    #: Largest share of padding in a batch (:func:`jinav3.model.batching.token_budget_batches`).
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
        self._lane = threading.local()  # see express()
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
        self._rows = int(config.get("vocab_size") or 0)  # embedding rows (0: unknown); see _check_rows
        self._ignored_tasks: set[str] = set()  # tasks asked of a model without adapters, already reported

    # -- helpers -----------------------------------------------------------------------------------------
    def instruction(self, task: str | None) -> str:
        return self.preparer.instruction(task)

    def _task_id(self, task: str | None) -> int:
        validate_task(task)
        if task is not None and not self.tasks and task not in self._ignored_tasks:
            self._ignored_tasks.add(task)  # said once per task: embed_query on a plain encoder is not a mistake
            warnings.warn(f"{display_name(self.model_name)} has no task adapters, so task={task!r} is not applied: "
                          "its vectors are the model's plain ones, the same for every task (task adapters are a "
                          "jina-embeddings-v3 feature)", NoTaskAdaptersWarning, stacklevel=4)
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

    @contextmanager
    def express(self) -> Iterator[None]:
        """Within this block, this thread's forward passes run on the engine's express instance (where
        :attr:`runs_beside`), beside a pass under way on the main one instead of after it: a server answers a short
        query while a heavy request is being computed. The vectors are the same bit for bit (the same graph and
        settings)."""
        self._lane.express = True
        try:
            yield
        finally:
            self._lane.express = False

    def _on_express_lane(self) -> bool:
        return self.runs_beside and getattr(self._lane, "express", False)

    def _check_stop(self) -> None:
        function = getattr(self._stop_check, "function", None)
        if function is not None and function():
            raise Abandoned("every caller of this forward pass has gone")

    # -- forward -----------------------------------------------------------------------------------------
    def _plan(self, sequences: Sequence[np.ndarray], task_ids: Sequence[int]) -> list[tuple[int, list[int]]]:
        """(task id, indices) of token-budget batches, one task per batch, tasks in order of first appearance."""
        self._check_rows(sequences)
        lengths = [len(s) for s in sequences]
        batches: list[tuple[int, list[int]]] = []
        for task_id in dict.fromkeys(task_ids):
            members = [i for i, t in enumerate(task_ids) if t == task_id]
            for batch in token_budget_batches(
                [lengths[i] for i in members], self.token_budget, self.max_batch, self.max_padding
            ):
                batches.append((task_id, [members[j] for j in batch]))
        return batches

    def _check_rows(self, sequences: Sequence[np.ndarray]) -> None:
        """Refuse ids without a row in the embedding table: special tokens a tokenizer may hold beyond the table
        (EmbeddingGemma: one more than its rows), written literally in a text."""
        if not self._rows:
            return
        for index, ids in enumerate(sequences):
            token_id = int(np.max(ids)) if len(ids) else -1
            if token_id >= self._rows:
                raise InvalidInputError(
                    f"input {index} contains the token {self.tokenizer.id_to_token(token_id)!r} (id {token_id}), a "
                    f"special token of the tokenizer without a row in the model's embedding table ({self._rows} "
                    "rows); remove it from the text"
                )

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
        """Per-token output vectors (fp32) of every sequence, whole: what late chunking pools, for callers that
        need the tokens themselves (the tests' reference for the pooled vectors)."""
        out: list[np.ndarray] = [np.empty(0)] * len(sequences)
        for batch, hidden, _ in self._batches(sequences, task_ids, show_progress):
            host = self._host(hidden)
            for row, i in enumerate(batch):
                out[i] = host[row, : len(sequences[i])]
        return out

    def _progress(self, batches: list[tuple[int, list[int]]], show_progress: bool | None) -> Any:
        return progress_bar(show_progress, iterable=batches, desc="embedding", unit="batch")

    # -- protocol ----------------------------------------------------------------------------------------
    def embed(
        self, texts: Sequence[str], task: str | None, *, truncate: bool = False, show_progress: bool | None = False,
        usage: TokenUsage | None = None, normalized: bool = False,
    ) -> np.ndarray:
        task_id = self._task_id(task)
        sequences = self.encode_ids(texts, task, truncate=truncate)
        if usage is not None:
            usage.add(sum(len(s) for s in sequences))
        return self.embed_ids(sequences, [task_id] * len(sequences), show_progress)

    def tokenize_document(self, document: str, task: str | None) -> late.TokenizedDocument:
        return self.preparer.tokenize(document, task)

    def prepare(
        self, documents: Sequence[str], spans: Sequence[Sequence[Span]], task: str | None, include_special_tokens: bool,
        show_progress: bool | None = False,
    ) -> list[PreparedDocument]:
        """Tokenise every document with its spans (the CPU half of late chunking); a long one shows its progress."""
        self._task_id(task)
        return [
            self.preparer.prepare(doc, task, spans=doc_spans, include_special_tokens=include_special_tokens,
                                  show_progress=show_progress)
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
        show_progress: bool | None = False,
        usage: TokenUsage | None = None,
        normalized: bool = False,
    ) -> list[np.ndarray]:
        prepared = self.prepare(documents, spans, task, include_special_tokens, show_progress)
        return self.late_chunk_prepared(prepared, window=window, overlap=overlap, show_progress=show_progress,
                                        usage=usage)

    def late_chunk_prepared(
        self,
        prepared: Sequence[PreparedDocument],
        *,
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool | None = False,
        usage: TokenUsage | None = None,
    ) -> list[np.ndarray]:
        """Raw contextual vectors of prepared documents. Windows run in document order, about
        ``_LATE_GROUP_TOKENS`` tokens at a time, and each window's token vectors are pooled as soon as it finishes,
        so memory is bounded by that group, not by the longest document. The tokens of every window fed to the
        model are added to ``usage``."""
        window = self.max_length if window is None else window
        if not late.MIN_WINDOW <= window <= self.max_length:
            raise InvalidInputError(f"window must be between {late.MIN_WINDOW} and max_length={self.max_length}, "
                                    f"got {window}")
        if overlap is not None and overlap < 0:
            raise InvalidInputError(f"overlap must be at least 0 tokens, got {overlap}")
        plans = [self._window_plan(item.tokens, window, overlap) for item in prepared]
        results: list[np.ndarray] = [np.empty(0)] * len(prepared)
        streams: dict[int, late.PoolingStream] = {}
        total = sum(item.tokens.length for item in prepared)
        with progress_bar(show_progress, total=total, desc="late chunking", unit="tok") as bar:
            for group in _window_groups(prepared, plans):
                sequences = [late.window_sequences(prepared[d].tokens, [plans[d][k]])[0] for d, k in group]
                task_ids = [self._task_id(prepared[d].task) for d, _ in group]
                if usage is not None:
                    usage.add(sum(len(s) for s in sequences))
                pending: dict[int, Any] = {}
                fed = 0
                for batch, hidden, _ in self._batches(sequences, task_ids, False):
                    for row, i in enumerate(batch):
                        out = hidden[row, : len(sequences[i])]
                        pending[i] = self._kept(out)
                    while fed in pending:  # windows are pooled in document order, each as soon as it can be
                        d, k = group[fed]
                        out = pending.pop(fed)
                        if d not in streams:
                            streams[d] = self._pooling_stream(prepared[d])
                        stream = streams[d]
                        for rows in late.kept_rows(prepared[d].tokens, plans[d], k, len(out)):
                            stream.feed(out[rows])
                            bar.update(rows.stop - rows.start)
                        if k == len(plans[d]) - 1:
                            results[d] = streams.pop(d).result()
                        fed += 1
        return results

    def _window_plan(self, doc: late.TokenizedDocument, window: int, overlap: int | None) -> list[late.Window]:
        content_window = window - len(doc.head) - len(doc.tail)
        if content_window < 8:
            raise InvalidInputError(f"window={window} leaves no room for the document after the instruction")
        ov = min(512, content_window // 4) if overlap is None else overlap
        return late.plan_windows(len(doc.content), content_window, ov)

    def _kept(self, vectors: Any) -> Any:
        """A window's token vectors as they wait for pooling: fp32 numpy on the host (an engine may keep them on
        its device, with :meth:`_pooling_stream` pooling there)."""
        return self._host(vectors)

    def _pooling_stream(self, item: PreparedDocument) -> late.PoolingStream:
        return late.PoolingStream(item.tokens, item.pooling, self.full_dimensions)

    async def aembed(self, texts: Sequence[str], task: str | None, *, truncate: bool = False,
                     usage: TokenUsage | None = None, normalized: bool = False) -> np.ndarray:
        return await asyncio.to_thread(self.embed, texts, task, truncate=truncate, usage=usage)

    async def alate_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        usage: TokenUsage | None = None,
        normalized: bool = False,
    ) -> list[np.ndarray]:
        return await asyncio.to_thread(
            self.late_chunk,
            documents,
            spans,
            task,
            include_special_tokens=include_special_tokens,
            window=window,
            overlap=overlap,
            usage=usage,
        )


def _window_groups(
    prepared: Sequence[PreparedDocument], plans: Sequence[Sequence[late.Window]]
) -> Iterator[list[tuple[int, int]]]:
    """``(document, window)`` pairs in document order, in groups of about ``_LATE_GROUP_TOKENS`` tokens (at least
    one window each): one group's windows share batches, and only one group's token vectors exist at a time."""
    group: list[tuple[int, int]] = []
    tokens = 0
    for d, plan in enumerate(plans):
        extra = len(prepared[d].tokens.head) + len(prepared[d].tokens.tail)
        for k, w in enumerate(plan):
            group.append((d, k))
            tokens += w.end - w.start + extra
            if tokens >= _LATE_GROUP_TOKENS:
                yield group
                group, tokens = [], 0
    if group:
        yield group
