"""Micro-batching: concurrent requests share forward passes of the local backend.

Requests are tokenised (and checked against the limits) by the request handler, then queued as jobs on a lane. A
lane's worker keeps every job waiting on it in a pool and computes it in *sub-rounds* of about one backend batch
(``token_budget`` tokens, fewer where the measured speed says that takes longer than ``sub_round_seconds``),
choosing each sub-round afresh from everything waiting at that moment (:func:`next_sub_round`): the jobs with the
least work done so far first, then the least left, so a small request that arrives while a large one is being
computed goes in the very next sub-round instead of waiting for the large one to finish: it waits for the work ahead
of it at the scale of one sub-round, never for a whole heavy neighbour. Its sub-round takes as company only jobs of
comparable size (:func:`company_limit`), never a large job's rows. A plain job is split by rows across sub-rounds
(its rows are computed exactly as alone: rows never depend on their batch-mates) and answered when its last row is
done; a late-chunking job is one sequence. Plain rows and late-chunking documents (of any task) share sub-rounds, so
neither kind waits for the other. On the graph engines a second lane, the express lane, takes the jobs of at most
``express_tokens`` (a query or two) and computes them beside the main lane's sub-round, on its own thread and
instance of the graph (:class:`_Lane`), so a query never waits for a pass under way. A job without progress for
``max_delay`` seconds goes first, so a stream of small requests cannot starve a large one, but it fills at most half
a sub-round while newer jobs wait. Output choices (dimensions, normalisation, encoding) are per request and applied
by the caller to the raw vectors.

Work nobody waits for is never computed: a job whose future was cancelled (its client went away) leaves the pool
before the next sub-round, and a sub-round whose jobs have all been cancelled stops before its next encoder layer
(:meth:`LocalBackend.stoppable`), so an abandoned request costs at most a layer's worth of work after it is noticed.
Sub-rounds run on a daemon thread, so a stopping server answers the jobs it will not compute
(:meth:`MicroBatcher.abort`) and exits without waiting for them. The worker measures its throughput (tokens per
second, as fixed cost plus cost per token: :mod:`jinav3.server.throughput`), from a calibration at start
(:meth:`MicroBatcher.calibrate`) and every sub-round since, so an overloaded server can tell clients how long to
wait (:meth:`MicroBatcher.retry_after`) and admission is right from the first request.

One client never fails another's job. Every check that can fail for one input runs before its job is queued (the
handler tokenises; a late-chunking document is fully prepared: chunked, tokenised and planned). If a shared
sub-round still fails, it is bisected and each half re-run (rows never depend on their batch-mates, so the re-run
gives the same vectors) until the failing job is alone: only that job gets the error.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from jinav3.backends.local_base import LocalBase
from jinav3.late_chunking.chunking import Span
from jinav3.late_chunking.preparation import PreparedDocument
from jinav3.server.throughput import ThroughputModel, calibration_rows

#: The fewest tokens a sub-round is cut to by :meth:`MicroBatcher.sub_round_tokens` (smaller batches waste the engine).
MIN_SUB_ROUND_TOKENS = 256
#: Jobs of at most this many tokens (a query or two) go on the express lane, where the engine has one.
EXPRESS_TOKENS = 64
#: An express sub-round holds at most this many express-sized jobs' tokens, so a flood of queries keeps each
#: express answer within a few milliseconds of work.
EXPRESS_ROUND_JOBS = 8
#: A text for the calibration's token ids (any real text: only its length matters).
_CALIBRATION_TEXT = ("Berlin is the capital and largest city of Germany, both by area and by population. Its more "
                     "than 3.85 million inhabitants make it the most populous city of the European Union. ")


class Overloaded(Exception):
    """Too many inputs, or too many seconds of work, are waiting; the caller should answer 503 with ``Retry-After``.
    ``reason`` names which (for the metrics)."""

    def __init__(self, detail: str, reason: str = "queue_full") -> None:
        super().__init__(detail)
        self.reason = reason




class ShuttingDown(Exception):
    """The server is stopping and will not compute this job; the caller should answer 503."""


class _RoundThread:
    """The daemon thread one lane's sub-rounds run on, one after another. It lives as long as the server, so a
    sub-round costs no thread start (a query's answer waits for it), and a stopping process never waits for it.
    On the express lane its forward passes run on the engine's express instance (:meth:`LocalBase.express`)."""

    def __init__(self, name: str, lane: Callable[[], AbstractContextManager[None]]) -> None:
        self._calls: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._lane = lane
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future:
        """``function(*args)`` on this thread, after the calls before it; its outcome on the calling loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._calls.put((loop, future, function, args))
        return future

    def stop(self) -> None:
        self._calls.put(None)

    def _serve(self) -> None:
        with self._lane():
            while (call := self._calls.get()) is not None:
                loop, future, function, args = call
                try:
                    outcome, failed = function(*args), False
                except BaseException as exc:  # handed to the awaiting coroutine
                    outcome, failed = exc, True
                try:
                    loop.call_soon_threadsafe(_settle, future, outcome, failed)
                except RuntimeError:  # the loop is closed: the process is exiting
                    return


def _settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    if not future.done():
        future.set_exception(outcome) if failed else future.set_result(outcome)


@dataclass
class _Lane:
    """A queue of jobs and the worker that schedules them into sub-rounds on its own thread. The main lane takes
    every job; where the engine :attr:`~LocalBase.runs_beside`, the express lane takes the small ones (at most
    ``express_tokens``) and computes them beside the main lane's sub-round instead of after it."""

    name: str
    express: bool
    thread: _RoundThread
    queue: asyncio.Queue[_Job | None] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None


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
    prepared: PreparedDocument | None = None  # late chunking: checked and tokenised before it was queued
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None  # when its first sub-round began
    progressed_at: float | None = None  # when its last piece was done (None: nothing done yet)
    done_rows: int = 0  # plain: rows computed so far, their vectors in ``parts``
    parts: list[np.ndarray] = field(default_factory=list)

    @property
    def late(self) -> bool:
        return self.document is not None

    def remaining_tokens(self) -> int:
        if self.late:
            return self.tokens
        return sum(len(s) for s in self.sequences[self.done_rows:])


@dataclass
class _Piece:
    """A job's share of one sub-round: rows ``lo:hi`` of a plain job, or a whole late-chunking job."""

    job: _Job
    lo: int = 0
    hi: int = 1

    @property
    def sequences(self) -> Sequence[np.ndarray]:
        """The plain job's rows in this piece (none for late chunking: the backend tokenises the document)."""
        return () if self.job.late else self.job.sequences[self.lo:self.hi]

    @property
    def tokens(self) -> int:
        return self.job.tokens if self.job.late else sum(len(s) for s in self.sequences)

    @property
    def inputs(self) -> int:
        """Rows of a plain piece; a late-chunking document counts as one sequence."""
        return 1 if self.job.late else self.hi - self.lo


class MicroBatcher:
    """Collects jobs from concurrent requests and runs them in shared batches on one worker.

    ``max_wait`` is how long an idle worker waits for company once a job arrives (or until ``max_batch_tokens``
    tokens are waiting); ``max_pending`` bounds the inputs waiting, beyond which :class:`Overloaded` is raised;
    ``max_delay`` is the wait without progress after which a job goes first whatever its size;
    ``sub_round_seconds`` caps a sub-round's tokens to about that long at the measured speed; ``express_tokens``
    is the most tokens a job may have to go on the express lane (0: no express lane; engines that cannot run two
    passes at once have none).
    """

    def __init__(
        self, backend: LocalBase, *, max_batch_tokens: int = 65_536, max_wait: float = 0.0,
        max_pending: int = 100_000, max_delay: float = 2.0, max_queue_seconds: float | None = None,
        sub_round_seconds: float | None = 0.25, express_tokens: int = EXPRESS_TOKENS,
    ) -> None:
        self.backend = backend
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.max_pending = max_pending
        self.max_delay = max_delay
        self.max_queue_seconds = max_queue_seconds  # bound on the estimated seconds of queued work; None = none
        self.sub_round_seconds = sub_round_seconds  # target length of a sub-round; None = the backend's batch
        self.express_tokens = express_tokens if backend.runs_beside else 0
        self.pending = 0  # inputs waiting or running
        self.pending_tokens = 0
        self.rounds = 0  # sub-rounds computed, on either lane
        self.express_rounds = 0  # of them, on the express lane
        self.dropped = 0  # jobs dropped because their client went away
        self.isolations = 0  # failed shared sub-rounds split to find the failing job
        self.metrics: Any = None  # a ServerMetrics (sub_round, job_done) when the server exports metrics
        self.speed = ThroughputModel()
        self._live: set[_Job] = set()
        self._stopped: BaseException | None = None
        self._lanes: list[_Lane] = []  # the main lane, then the express lane where there is one

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._lanes = [_Lane("main", False, _RoundThread("jinav3-round", nullcontext))]
        if self.express_tokens > 0:
            self._lanes.append(_Lane("express", True, _RoundThread("jinav3-express", self.backend.express)))
        loop = asyncio.get_running_loop()
        for lane in self._lanes:
            lane.worker = loop.create_task(self._run(lane), name=f"jinav3-micro-batcher-{lane.name}")

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
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.thread.stop()
            if lane.worker is not None:
                lane.worker.cancel()
                try:
                    await lane.worker
                except asyncio.CancelledError:
                    pass

    @property
    def tokens_per_second(self) -> float | None:
        """The measured marginal rate (None before the calibration or any sub-round)."""
        return self.speed.tokens_per_second

    def estimate_seconds(self, tokens: int) -> float | None:
        """Seconds to compute ``tokens`` of queued work at the measured speed; None before any measurement."""
        return self.speed.seconds(tokens, max(1, self.backend.token_budget))

    def sub_round_tokens(self) -> int:
        """Tokens per sub-round: the backend's batch, or fewer where the measured speed says that takes longer than
        ``sub_round_seconds`` (at least :data:`MIN_SUB_ROUND_TOKENS`), so a small request beside heavy work waits
        about that long, on any engine and on a loaded machine."""
        budget = max(1, self.backend.token_budget)
        per_token = self.speed.per_token
        if per_token is None or self.sub_round_seconds is None:
            return budget
        fits = int(max(0.0, self.sub_round_seconds - self.speed.overhead) / per_token)
        return min(budget, max(MIN_SUB_ROUND_TOKENS, fits))

    def calibrate(self, tokens: int) -> None:
        """Time two forward passes of known size (one short row, then rows adding up to ``tokens``) on this engine
        and dtype, after a pass that warms the engine up, so admission and ``Retry-After`` are right from the first
        request. Runs before the server accepts requests; ``tokens`` 0 skips it."""
        if tokens <= 0:
            return
        task = self.backend.tasks[0] if self.backend.tasks else None  # a graph with adapters needs a task
        task_id = self.backend._task_id(task)
        ids = self.backend.encode_ids([_CALIBRATION_TEXT], task, truncate=True)[0]
        short, long = calibration_rows(ids, tokens, self.backend.max_length)
        self.backend.embed_ids(short, [task_id])  # one-time costs (kernel selection, caches) out of the timings
        for rows in (short, long):
            started = time.perf_counter()
            self.backend.embed_ids(rows, [task_id] * len(rows))
            self.speed.add(sum(len(row) for row in rows), time.perf_counter() - started, anchor=True)

    def retry_after(self) -> int:
        """Whole seconds until the work waiting now is done at the measured speed (1 to 120)."""
        seconds = self.estimate_seconds(self.pending_tokens)
        if seconds is None:
            return 1
        return max(1, min(120, math.ceil(seconds)))

    # -- submitting --------------------------------------------------------------------------------------
    def _submit(self, job: _Job) -> asyncio.Future:
        if self._stopped is not None:
            raise type(self._stopped)(*self._stopped.args)
        if not self._lanes:
            raise RuntimeError("the micro-batcher is not running")
        if self.pending + job.inputs > self.max_pending and self.pending > 0:
            raise Overloaded(f"{self.pending} inputs are already waiting (limit {self.max_pending})")
        self.admit(job.tokens)
        self.pending += job.inputs
        self.pending_tokens += job.tokens
        self._live.add(job)
        job.future.add_done_callback(lambda _: self._release(job))
        self._lane_for(job).queue.put_nowait(job)
        return job.future

    def _lane_for(self, job: _Job) -> _Lane:
        """The express lane for a job of at most ``express_tokens`` (where there is one), else the main lane."""
        express = len(self._lanes) > 1 and job.tokens <= self.express_tokens
        return self._lanes[-1] if express else self._lanes[0]

    def admit(self, tokens: int) -> None:
        """Refuse a job of ``tokens`` at once (:class:`Overloaded`) when the work it would wait for, plus its
        own, exceeds ``max_queue_seconds`` at the measured speed (calibrated at start, updated by every sub-round).
        Shortest work goes first, so the work ahead of a job
        is that of the jobs no larger than it: heavy requests are refused once the queue holds the bound, while a
        small one still gets in beside them. A job into an empty queue (or, without a calibration, before the first
        sub-round) is always admitted. The handler also calls it before tokenising, with a low estimate, so a heavy
        request is refused in milliseconds."""
        bound = self.max_queue_seconds
        if bound is None or self.pending == 0 or self.speed.per_token is None:
            return
        ahead = self.estimate_seconds(sum(other.tokens for other in self._live if other.tokens <= tokens)) or 0.0
        own = self.estimate_seconds(tokens) or 0.0
        if ahead + own > bound:
            raise Overloaded(f"about {ahead:.1f} s of work is queued ahead of this request, which adds {own:.1f} s "
                             f"(limit {bound:g} s)", "queue_seconds")

    def _release(self, job: _Job) -> None:
        """The job is answered, failed or cancelled: it no longer counts as pending."""
        self.pending -= job.inputs
        self.pending_tokens -= job.tokens
        self._live.discard(job)

    async def embed(self, sequences: Sequence[np.ndarray], task_id: int) -> np.ndarray:
        """Raw pooled vectors of already tokenised inputs, shape (len(sequences), full width)."""
        if not sequences:  # nothing to schedule
            return np.zeros((0, self.backend.full_dimensions), dtype=np.float32)
        future = asyncio.get_running_loop().create_future()
        tokens = sum(len(s) for s in sequences)
        return await self._submit(_Job(future, len(sequences), tokens, sequences=sequences, task_id=task_id))

    async def late_chunk(self, document: str, spans: Sequence[Span], task: str | None, tokens: int,
                         prepared: PreparedDocument | None = None) -> np.ndarray:
        """Raw contextual vectors of the spans of one document that fits the context (one sequence). The document
        is prepared (chunked, tokenised, planned) here unless ``prepared`` is given, so a document that cannot be
        late-chunked fails alone, before it joins a shared sub-round."""
        if prepared is None:
            prepared = (await asyncio.to_thread(self.backend.prepare, [document], [spans], task, True))[0]
        future = asyncio.get_running_loop().create_future()
        return await self._submit(_Job(future, len(spans), tokens, document=document, spans=spans, task=task,
                                       prepared=prepared))

    # -- worker ------------------------------------------------------------------------------------------
    async def _gather(self, lane: _Lane, pool: list[_Job], wait: float, limit: float) -> bool:
        """Add to ``pool`` what is queued on ``lane``, and what arrives within ``wait`` seconds, until ``pool`` holds
        ``limit`` tokens. Returns whether the stop sentinel was seen."""
        tokens = sum(job.tokens for job in pool)
        deadline = time.perf_counter() + wait
        while tokens < limit:
            try:
                job = lane.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(lane.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if job is None:
                return True
            pool.append(job)
            tokens += job.tokens
        return False

    async def _run(self, lane: _Lane) -> None:
        """One lane's worker: sub-round after sub-round, each chosen afresh from everything waiting on the lane."""
        pool: list[_Job] = []
        wait = 0.0 if lane.express else self.max_wait
        while True:
            if not pool:
                first = await lane.queue.get()
                if first is None:
                    return
                pool.append(first)
                saw_stop = await self._gather(lane, pool, wait, self.max_batch_tokens)  # company for it
            else:
                saw_stop = await self._gather(lane, pool, 0.0, math.inf)  # whatever arrived meanwhile
            live = [job for job in pool if not job.future.done()]  # done before its end: the client went away
            self.dropped += len(pool) - len(live)
            pool = live
            if pool:
                budget = self.sub_round_tokens()
                if lane.express:
                    budget = min(budget, EXPRESS_ROUND_JOBS * self.express_tokens)
                pieces = next_sub_round(pool, budget, time.perf_counter() - self.max_delay)
                started = time.perf_counter()
                for piece in pieces:
                    piece.job.started_at = piece.job.started_at or started
                outcomes = await lane.thread.run(self._compute, pieces)
                answered = _deliver(pieces, outcomes)
                finished = {id(job) for job in answered}
                pool = [job for job in pool if id(job) not in finished]
                if not lane.express:  # express sub-rounds are tiny and share the CPU: they would skew the rate
                    self._measure(sum(piece.tokens for piece in pieces), time.perf_counter() - started)
                self.rounds += 1
                self.express_rounds += lane.express
                if self.metrics is not None:
                    self._report(pieces, answered, started)
            if saw_stop:
                return

    def _report(self, pieces: Sequence[_Piece], answered: Sequence[_Job], started: float) -> None:
        """Tell the metrics about this sub-round and the jobs it completed."""
        now = time.perf_counter()
        self.metrics.sub_round(sum(piece.inputs for piece in pieces), sum(piece.tokens for piece in pieces),
                               now - started)
        for job in answered:
            if job.started_at is not None and job.future.exception() is None:
                self.metrics.job_done(job.started_at - job.queued_at, now - job.started_at)

    def _measure(self, tokens: int, seconds: float) -> None:
        self.speed.add(tokens, seconds)

    def _compute(self, pieces: Sequence[_Piece]) -> list[Any]:
        """One sub-round on the worker thread: the vectors per piece, or the exception for every piece. The pass
        stops between layers once every job in it has been cancelled (all their clients left)."""
        stoppable = getattr(self.backend, "stoppable", None)
        if stoppable is None:
            return self._compute_pieces(pieces)
        with stoppable(lambda: all(piece.job.future.done() for piece in pieces)):
            return self._compute_pieces(pieces)

    def _compute_pieces(self, pieces: Sequence[_Piece]) -> list[Any]:
        """The outcome per piece; a failing sub-round is bisected until the failure is pinned on its own pieces."""
        try:
            return self._run_pieces(pieces)
        except Exception as exc:
            if len(pieces) == 1 or all(piece.job.future.done() for piece in pieces):
                return [exc] * len(pieces)
            self.isolations += 1
            half = len(pieces) // 2
            return self._compute_pieces(pieces[:half]) + self._compute_pieces(pieces[half:])

    def _run_pieces(self, pieces: Sequence[_Piece]) -> list[Any]:
        """The forward passes of one sub-round: the plain pieces' rows together, then the late-chunking documents
        together (of any tasks); the outcomes in the order of ``pieces``."""
        plain = [piece for piece in pieces if not piece.job.late]
        late = [piece for piece in pieces if piece.job.late]
        outcomes: dict[int, Any] = {}
        if plain:
            rows = [s for piece in plain for s in piece.sequences]
            vectors = self.backend.embed_ids(rows, [piece.job.task_id for piece in plain
                                                    for _ in range(piece.hi - piece.lo)])
            bounds = np.cumsum([0, *(piece.hi - piece.lo for piece in plain)])
            outcomes.update((id(piece), vectors[lo:hi]) for piece, (lo, hi) in zip(plain, pairwise(bounds),
                                                                                     strict=True))
        if late:
            documents = self.backend.late_chunk_prepared([piece.job.prepared for piece in late])  # type: ignore[misc]
            outcomes.update((id(piece), vectors) for piece, vectors in zip(late, documents, strict=True))
        return [outcomes[id(piece)] for piece in pieces]


#: Company for a sub-round led by a small fresh job: only fresh jobs with at most this many times its remaining work
#: (or ``COMPANY_FLOOR`` tokens). Filling the budget with a large job's rows made every small request's sub-round as
#: slow as the large one's; on its own sub-rounds the large job still fills the budget.
COMPANY_FACTOR = 4
COMPANY_FLOOR = 512
#: The share of a sub-round that overdue work may fill while fresh work waits (the first overdue job always gets
#: at least one row): overdue jobs cannot starve, and cannot hold newer small requests up for more than a sub-round.
OVERDUE_SHARE = 0.5


def is_overdue(job: _Job, overdue_before: float) -> bool:
    """Whether ``job`` has made no progress (queued, or its last piece done) since ``overdue_before``."""
    return (job.progressed_at or job.queued_at) < overdue_before


def company_limit(head: _Job, overdue_before: float) -> float:
    """The most remaining work a fresh job may have to share a sub-round led by ``head`` (no bound when ``head``
    is overdue: its sub-round is full-sized anyway)."""
    if is_overdue(head, overdue_before):
        return math.inf
    return max(COMPANY_FACTOR * head.remaining_tokens(), COMPANY_FLOOR)


def urgency(job: _Job, overdue_before: float) -> tuple[float, ...]:
    """Sort key of the scheduler: overdue jobs first, longest without progress first; then the fresh ones by least
    work done so far (a new request before one already part-computed), then least work left, then arrival."""
    if is_overdue(job, overdue_before):
        return (0, job.progressed_at or job.queued_at, 0, 0)
    return (1, job.tokens - job.remaining_tokens(), job.remaining_tokens(), job.queued_at)


def next_sub_round(pool: Sequence[_Job], budget: int, overdue_before: float) -> list[_Piece]:
    """The next sub-round: about ``budget`` tokens of work, plain rows and late-chunking documents together.

    Jobs go in :func:`urgency` order, so a request that arrives while a heavy one is being computed goes in the
    very next sub-round: it has had no work done yet, the heavy one has. A plain job is taken by whole rows (the
    first piece always holds at least one row or document, however long); a fresh job joins only within
    :func:`company_limit` of the first one; overdue jobs fill at most :data:`OVERDUE_SHARE` of the budget while a
    fresh job waits. A job waiting longer than the overdue bound therefore always progresses, and never keeps newer
    small jobs out of a sub-round.
    """
    order = sorted(pool, key=lambda job: urgency(job, overdue_before))
    head = order[0]
    limit = company_limit(head, overdue_before)
    fresh_waiting = any(not is_overdue(job, overdue_before) for job in order)
    overdue_budget = budget * OVERDUE_SHARE if fresh_waiting else budget
    pieces: list[_Piece] = []
    tokens = 0
    for job in order:
        overdue = is_overdue(job, overdue_before)
        if not overdue and job.remaining_tokens() > limit:
            continue
        room = (overdue_budget if overdue else budget) - tokens
        if job.late:
            if pieces and job.tokens > room:
                continue
            pieces.append(_Piece(job))
            tokens += job.tokens
        else:
            hi = job.done_rows
            first_unit = not pieces  # the sub-round's first row goes in whatever its length
            while hi < len(job.sequences) and (len(job.sequences[hi]) <= room or (first_unit and hi == job.done_rows)):
                room -= len(job.sequences[hi])
                tokens += len(job.sequences[hi])
                hi += 1
            if hi > job.done_rows:
                pieces.append(_Piece(job, job.done_rows, hi))
        if tokens >= budget:
            break
    return pieces


def _deliver(pieces: Sequence[_Piece], outcomes: Sequence[Any]) -> list[_Job]:
    """Record each piece's outcome on its job (on the event loop); answer the jobs that are complete or failed and
    return them. A job cancelled meanwhile is left alone."""
    finished = []
    for piece, outcome in zip(pieces, outcomes, strict=True):
        job = piece.job
        if job.future.done():
            continue
        job.progressed_at = time.perf_counter()
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        elif job.late:
            job.future.set_result(outcome)
        else:
            job.parts.append(outcome)
            job.done_rows = piece.hi
            if job.done_rows < len(job.sequences):
                continue
            job.future.set_result(np.concatenate(job.parts) if len(job.parts) > 1 else job.parts[0])
        finished.append(job)
    return finished
