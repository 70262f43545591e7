"""Micro-batching: concurrent requests share forward passes of the local backend.

Requests are tokenised (and checked against the limits) by the request handler, then queued as jobs. One worker
takes every job waiting in the queue (after a short gathering pause, up to a token budget) and runs them
together: plain inputs of all jobs go through one ``embed_ids`` call, which packs them into the backend's
length-sorted token-budget batches with a LoRA task id per row, so requests of different tasks share batches.
Late-chunking jobs are one sequence each and run through the backend's late chunking, grouped by task. Output
choices (dimensions, normalisation, encoding) are per request and applied by the caller to the raw vectors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from jinav3.backends.local import LocalBackend
from jinav3.chunking import Span


class Overloaded(Exception):
    """Too many inputs are waiting; the caller should answer 503 with ``Retry-After``."""


@dataclass
class _Job:
    future: asyncio.Future[list[np.ndarray] | np.ndarray]
    inputs: int
    tokens: int
    sequences: Sequence[np.ndarray] = ()  # plain embedding: token ids per input
    task_id: int = -1
    document: str | None = None  # late chunking: the joined text, its chunk spans and task
    spans: Sequence[Span] = ()
    task: str | None = None
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects jobs from concurrent requests and runs them in shared batches on one worker.

    ``max_batch_tokens`` bounds the real tokens gathered into one round (the backend still splits a round into
    its own padded-token batches); ``max_wait`` is how long the worker waits for company once a job arrives;
    ``max_pending`` bounds the inputs waiting, beyond which :class:`Overloaded` is raised.
    """

    def __init__(
        self, backend: LocalBackend, *, max_batch_tokens: int = 65_536, max_wait: float = 0.002,
        max_pending: int = 100_000,
    ) -> None:
        self.backend = backend
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.max_pending = max_pending
        self.pending = 0
        self.rounds = 0
        self._queue: asyncio.Queue[_Job | None] | None = None
        self._worker: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="jinav3-micro-batcher")

    async def close(self) -> None:
        """Finish every queued job, then stop the worker."""
        if self._queue is None or self._worker is None:
            return
        await self._queue.put(None)
        await self._worker
        self._queue = self._worker = None

    # -- submitting --------------------------------------------------------------------------------------
    def _submit(self, job: _Job) -> asyncio.Future:
        if self._queue is None:
            raise RuntimeError("the micro-batcher is not running")
        if self.pending + job.inputs > self.max_pending and self.pending > 0:
            raise Overloaded(f"{self.pending} inputs are already waiting (limit {self.max_pending})")
        self.pending += job.inputs
        self._queue.put_nowait(job)
        return job.future

    async def embed(self, sequences: Sequence[np.ndarray], task_id: int) -> np.ndarray:
        """Raw pooled vectors of already tokenised inputs, shape (len(sequences), full width)."""
        future = asyncio.get_running_loop().create_future()
        tokens = sum(len(s) for s in sequences)
        return await self._submit(_Job(future, len(sequences), tokens, sequences=sequences, task_id=task_id))

    async def late_chunk(self, document: str, spans: Sequence[Span], task: str | None, tokens: int) -> np.ndarray:
        """Raw contextual vectors of the spans of one document that fits the context (one sequence)."""
        future = asyncio.get_running_loop().create_future()
        return await self._submit(_Job(future, len(spans), tokens, document=document, spans=spans, task=task))

    # -- worker ------------------------------------------------------------------------------------------
    async def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` plus whatever arrives within ``max_wait`` or is already queued, up to the token budget.
        Returns the jobs and whether the stop sentinel was seen."""
        assert self._queue is not None
        jobs, tokens = [first], first.tokens
        deadline = time.perf_counter() + self.max_wait
        while tokens < self.max_batch_tokens:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if job is None:
                return jobs, True
            jobs.append(job)
            tokens += job.tokens
        return jobs, False

    async def _run(self) -> None:
        assert self._queue is not None
        stopping = False
        while True:
            if stopping and self._queue.empty():
                return
            first = await self._queue.get()
            if first is None:
                stopping = True
                continue
            jobs, saw_stop = await self._gather(first)
            stopping = stopping or saw_stop
            outcomes = await asyncio.to_thread(self._process, jobs)
            self.rounds += 1
            for job, outcome in zip(jobs, outcomes, strict=True):
                self.pending -= job.inputs
                if job.future.done():  # the request was cancelled (client went away)
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    def _process(self, jobs: Sequence[_Job]) -> list[np.ndarray | list[np.ndarray] | BaseException]:
        """Run one round in the worker thread; a failure only fails the jobs of the call that failed."""
        outcomes: list[np.ndarray | list[np.ndarray] | BaseException] = [None] * len(jobs)  # type: ignore[list-item]
        plain = [i for i, job in enumerate(jobs) if job.document is None]
        if plain:
            sequences = [seq for i in plain for seq in jobs[i].sequences]
            task_ids = [jobs[i].task_id for i in plain for _ in jobs[i].sequences]
            try:
                vectors = self.backend.embed_ids(sequences, task_ids)
                at = 0
                for i in plain:
                    outcomes[i] = vectors[at : at + jobs[i].inputs]
                    at += jobs[i].inputs
            except Exception as exc:
                for i in plain:
                    outcomes[i] = exc
        late_by_task: dict[str | None, list[int]] = {}
        for i, job in enumerate(jobs):
            if job.document is not None:
                late_by_task.setdefault(job.task, []).append(i)
        for task, members in late_by_task.items():
            try:
                results = self.backend.late_chunk(
                    [jobs[i].document for i in members], [jobs[i].spans for i in members], task  # type: ignore[misc]
                )
                for i, result in zip(members, results, strict=True):
                    outcomes[i] = result
            except Exception as exc:
                for i in members:
                    outcomes[i] = exc
        return outcomes
