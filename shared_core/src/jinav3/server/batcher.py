"""Micro-batching: concurrent requests share forward passes of the local backend.

Requests are tokenised (and checked against the limits) by the request handler, then queued as jobs. One worker
takes every job waiting in the queue (after a short gathering pause, up to a token budget) and runs them
together, smallest jobs first, in sub-rounds of about one backend batch (``token_budget`` tokens): each job is
answered as soon as its sub-round is done, so a small request never waits for a large one gathered with it, and a
job whose client left while the round ran is skipped. Late-chunking jobs are one sequence each and run through the
backend's late chunking, grouped by task. Output
choices (dimensions, normalisation, encoding) are per request and applied by the caller to the raw vectors.

Work nobody waits for is never computed: a job whose future was cancelled (its client went away) is dropped when
a round is gathered or before its sub-round runs. Rounds run on a daemon thread, so a stopping server answers the
jobs it will not compute (:meth:`MicroBatcher.abort`) and exits without waiting for them. The worker measures its
throughput (tokens per second) so an overloaded server can tell clients how long to wait
(:meth:`MicroBatcher.retry_after`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from jinav3.backends.local import LocalBackend
from jinav3.chunking import Span


class Overloaded(Exception):
    """Too many inputs are waiting; the caller should answer 503 with ``Retry-After``."""


class ShuttingDown(Exception):
    """The server is stopping and will not compute this job; the caller should answer 503."""


def _in_daemon_thread(function: Any, *args: Any) -> asyncio.Future:
    """Run ``function(*args)`` on a new daemon thread (a stopping process never waits for it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(outcome: Any, failed: bool) -> None:
        if not future.done():
            future.set_exception(outcome) if failed else future.set_result(outcome)

    def target() -> None:
        try:
            outcome, failed = function(*args), False
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome, failed = exc, True
        try:
            loop.call_soon_threadsafe(settle, outcome, failed)
        except RuntimeError:  # the loop is closed: the process is exiting
            pass

    threading.Thread(target=target, name="jinav3-round", daemon=True).start()
    return future


@dataclass(eq=False)  # identity: jobs live in a set
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
        self.pending = 0  # inputs waiting or running
        self.pending_tokens = 0
        self.rounds = 0
        self.dropped = 0  # jobs dropped because their client went away
        self.tokens_per_second: float | None = None  # moving average over recent rounds
        self._live: set[_Job] = set()
        self._stopped: BaseException | None = None
        self._queue: asyncio.Queue[_Job | None] | None = None
        self._worker: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="jinav3-micro-batcher")

    def abort(self, reason: BaseException) -> None:
        """Answer every job not yet answered with ``reason`` and refuse new ones (a round already running on its
        thread finishes unobserved)."""
        self._stopped = reason
        for job in list(self._live):
            if not job.future.done():
                job.future.set_exception(reason)
        self._live.clear()

    async def close(self) -> None:
        """Stop the worker; jobs still unanswered get :class:`ShuttingDown` (never computed at shutdown)."""
        self.abort(ShuttingDown("the server is shutting down"))
        if self._queue is None or self._worker is None:
            return
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass
        self._queue = self._worker = None

    def retry_after(self) -> int:
        """Whole seconds until the work waiting now is done at the measured rate (1 to 120)."""
        if not self.tokens_per_second:
            return 1
        return max(1, min(120, math.ceil(self.pending_tokens / self.tokens_per_second)))

    # -- submitting --------------------------------------------------------------------------------------
    def _submit(self, job: _Job) -> asyncio.Future:
        if self._stopped is not None:
            raise type(self._stopped)(*self._stopped.args)
        if self._queue is None:
            raise RuntimeError("the micro-batcher is not running")
        if self.pending + job.inputs > self.max_pending and self.pending > 0:
            raise Overloaded(f"{self.pending} inputs are already waiting (limit {self.max_pending})")
        self.pending += job.inputs
        self.pending_tokens += job.tokens
        self._live.add(job)
        job.future.add_done_callback(lambda _: self._release(job))
        self._queue.put_nowait(job)
        return job.future

    def _release(self, job: _Job) -> None:
        """The job is answered, failed or cancelled: it no longer counts as pending."""
        self.pending -= job.inputs
        self.pending_tokens -= job.tokens
        self._live.discard(job)

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
            if job.future.done():  # cancelled while queued: its client went away
                self.dropped += 1
                continue
            jobs.append(job)
            tokens += job.tokens
        return jobs, False

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            if first is None:
                return
            if first.future.done():
                self.dropped += 1
                continue
            jobs, saw_stop = await self._gather(first)
            live = [job for job in jobs if not job.future.done()]  # cancelled: the client went away
            self.dropped += len(jobs) - len(live)
            if live:
                started = time.perf_counter()
                loop = asyncio.get_running_loop()

                def deliver(job: _Job, outcome: Any, loop: asyncio.AbstractEventLoop = loop) -> None:
                    """Called on the round's thread: answer ``job`` on the loop as soon as its part is done."""
                    try:
                        loop.call_soon_threadsafe(_settle, job, outcome)
                    except RuntimeError:  # the loop is closed: the process is exiting
                        pass

                self.dropped += await _in_daemon_thread(self._process, live, deliver)
                self._measure(sum(job.tokens for job in live), time.perf_counter() - started)
                self.rounds += 1
            if saw_stop:
                return

    def _measure(self, tokens: int, seconds: float) -> None:
        rate = tokens / max(seconds, 1e-6)
        self.tokens_per_second = rate if self.tokens_per_second is None else 0.7 * self.tokens_per_second + 0.3 * rate

    def _process(self, jobs: Sequence[_Job], deliver: Callable[[_Job, Any], None]) -> int:
        """Run one round on the worker thread in sub-rounds of about one backend batch, smallest jobs first.

        Each job is answered as soon as its sub-round is done (a small request never waits for a large one gathered
        with it), a job whose client went away meanwhile is skipped, and a failure fails only its sub-round's jobs.
        Returns how many jobs were skipped.
        """
        budget = max(1, self.backend.token_budget)
        plain = sorted((job for job in jobs if job.document is None), key=lambda job: job.tokens)
        skipped = _run_in_parts(plain, budget, self._embed_part, deliver)
        late_jobs = sorted((job for job in jobs if job.document is not None), key=lambda job: job.tokens)
        for task in dict.fromkeys(job.task for job in late_jobs):
            same_task = [job for job in late_jobs if job.task == task]
            skipped += _run_in_parts(same_task, budget, self._late_part, deliver)
        return skipped

    def _embed_part(self, part: Sequence[_Job]) -> list[np.ndarray]:
        """Plain jobs: one ``embed_ids`` call, its rows split back per job."""
        vectors = self.backend.embed_ids([s for job in part for s in job.sequences],
                                         [job.task_id for job in part for _ in job.sequences])
        bounds = np.cumsum([0, *(job.inputs for job in part)])
        return [vectors[lo:hi] for lo, hi in pairwise(bounds)]

    def _late_part(self, part: Sequence[_Job]) -> list[np.ndarray]:
        """Late-chunking jobs of one task: one backend call."""
        return self.backend.late_chunk(
            [job.document for job in part], [job.spans for job in part], part[0].task  # type: ignore[misc]
        )


def _run_in_parts(
    jobs: Sequence[_Job], budget: int, compute: Callable[[Sequence[_Job]], list[Any]],
    deliver: Callable[[_Job, Any], None],
) -> int:
    """Compute ``jobs`` in sub-rounds of about ``budget`` tokens, skipping jobs whose client left meanwhile; a failure
    fails only its sub-round's jobs. Returns how many jobs were skipped."""
    skipped = 0
    for gathered in _sub_rounds(jobs, budget):
        part = [job for job in gathered if not job.future.done()]  # cancelled meanwhile: the client went away
        skipped += len(gathered) - len(part)
        if not part:
            continue
        try:
            outcomes = compute(part)
        except Exception as exc:
            outcomes = [exc] * len(part)
        for job, outcome in zip(part, outcomes, strict=True):
            deliver(job, outcome)
    return skipped


def _sub_rounds(jobs: Sequence[_Job], budget: int) -> list[list[_Job]]:
    """Consecutive jobs grouped up to ``budget`` tokens (a larger job forms its own group)."""
    groups: list[list[_Job]] = []
    tokens = budget
    for job in jobs:
        if tokens + job.tokens > budget:
            groups.append([])
            tokens = 0
        groups[-1].append(job)
        tokens += job.tokens
    return groups


def _settle(job: _Job, outcome: Any) -> None:
    """Answer ``job`` unless it was cancelled or aborted meanwhile (runs on the event loop)."""
    if job.future.done():
        return
    if isinstance(outcome, BaseException):
        job.future.set_exception(outcome)
    else:
        job.future.set_result(outcome)
