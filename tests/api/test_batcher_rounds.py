"""The micro-batcher's sub-rounds: every job gets exactly its own vectors whatever it is computed with (split by
rows or not), small jobs are answered before large ones, even ones already running, a job whose client left is
skipped, and the scheduler's choice is one kind of work within the budget, most urgent first."""

from __future__ import annotations

import asyncio
import math
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import TASKS, Embedder
from jinav3.backends.local import Abandoned
from jinav3.server.batcher import (
    OVERDUE_SHARE,
    MicroBatcher,
    _Job,
    company_limit,
    is_overdue,
    next_sub_round,
    urgency,
)
from jinav3.testing import same_vectors

WORDS = ["Berlin", "is", "the", "capital", "of", "Germany", "東京", "😀", "river"]


@pytest.fixture(scope="module")
def small_budget(tiny_checkpoint):
    """Batches of at most 64 tokens, so one round splits into many sub-rounds."""
    return Embedder.local(str(tiny_checkpoint), device="cpu", token_budget=64).backend


@asynccontextmanager
async def running(backend, max_wait, **options):
    """A started micro-batcher, closed on the way out."""
    batcher = MicroBatcher(backend, max_wait=max_wait, **options)
    batcher.start()
    try:
        yield batcher
    finally:
        await batcher.close()


def recorded(batcher, finished):
    """A job submitter that notes each job's name in ``finished`` when its vectors arrive."""

    async def job(name, seqs):
        vectors = await batcher.embed(seqs, -1)
        finished.append(name)
        return vectors

    return job


async def run_round(backend, jobs):
    async with running(backend, 0.05) as batcher:
        return await asyncio.gather(*(batcher.embed(seqs, task_id) for seqs, task_id in jobs))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(st.tuples(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=40).map(" ".join),
                                        min_size=1, max_size=4),
                               st.sampled_from([*TASKS, None])), min_size=1, max_size=8))
def test_every_job_gets_its_own_vectors(small_budget, jobs):
    backend = small_budget
    prepared = [([backend.encode_ids([t], task, truncate=False)[0] for t in texts], backend._task_id(task))
                for texts, task in jobs]
    got = asyncio.run(run_round(backend, prepared))
    for (seqs, task_id), vectors in zip(prepared, got, strict=True):
        assert same_vectors(vectors, backend.embed_ids(seqs, [task_id] * len(seqs)))  # bit for bit


async def test_small_jobs_are_answered_first_and_left_jobs_are_skipped(small_budget):
    backend = small_budget
    big = [backend.encode_ids([" ".join(WORDS * 6)], None, truncate=False)[0]] * 6
    small = [backend.encode_ids(["Berlin"], None, truncate=False)[0]]
    async with running(backend, 0.05) as batcher:
        finished: list[str] = []
        job = recorded(batcher, finished)
        left = asyncio.ensure_future(batcher.embed(big, -1))
        tasks = [asyncio.ensure_future(job("big", big)), asyncio.ensure_future(job("small", small))]
        await asyncio.sleep(0)
        left.cancel()  # its client went away before its sub-round ran
        await asyncio.gather(*tasks)
        assert finished == ["small", "big"]
        assert batcher.dropped >= 1


async def test_a_small_job_overtakes_a_large_one_already_running(small_budget):
    """A job arriving while a large one is being computed goes in the next sub-round, not after the large job."""
    backend = small_budget
    big = [backend.encode_ids([" ".join(WORDS * 4)], None, truncate=False)[0]] * 40  # ~40 sub-rounds
    small = [backend.encode_ids(["Berlin"], None, truncate=False)[0]]
    async with running(backend, 0.0) as batcher:
        finished: list[str] = []
        job = recorded(batcher, finished)
        large = asyncio.ensure_future(job("big", big))
        while batcher.rounds == 0:  # the large job is under way
            await asyncio.sleep(0.001)
        await job("small", small)
        assert finished == ["small"] and not large.done()
        assert same_vectors(await large, backend.embed_ids(big, [-1] * len(big)))


HEAVY_TEXT = " ".join(WORDS * 4)
DOCUMENT = "Berlin is the capital of Germany. It has a famous wall. The river is the Spree."
SPANS = [(0, 33), (34, 55), (56, len(DOCUMENT))]


async def late_job(batcher, task, repeat=1, prepared=False):
    """A late-chunking job of :data:`DOCUMENT` (its sentences; ``repeat`` times as long) for ``task``; ``prepared``:
    chunked and tokenised before it is queued, as the server's handler does (else the batcher prepares it)."""
    document = " ".join([DOCUMENT] * repeat)
    spans = [(start + i * (len(DOCUMENT) + 1), end + i * (len(DOCUMENT) + 1)) for i in range(repeat)
             for start, end in SPANS]
    tokens = batcher.backend.tokenize_document(document, task).length
    ready = batcher.backend.prepare([document], [spans], task, True)[0] if prepared else None
    return await batcher.late_chunk(document, spans, task, tokens, ready)


@pytest.mark.parametrize(("heavy_kind", "max_delay"), [("plain", 0.0), ("plain", 60.0), ("late", 60.0)],
                         ids=["plain_overdue", "plain", "late"])
@pytest.mark.parametrize("small_kind", ["plain", "late"])
async def test_a_small_job_beside_a_heavy_one_is_answered_within_two_sub_rounds(small_budget, max_delay, heavy_kind,
                                                                                small_kind):
    """Whatever kind either job is, and even when the heavy one is overdue (``max_delay`` 0: every job is overdue at
    once), a small job submitted while sub-round r+1 runs is answered by sub-round r+2: it waits for the sub-round
    under way, never for the whole heavy work; and both get exactly their vectors alone. (Heavy late-chunking work is
    many longer documents, each its own job: one document is never split.)"""
    backend = small_budget
    small = [backend.encode_ids(["Berlin"], None, truncate=False)[0]]
    async with running(backend, 0.0, max_delay=max_delay) as batcher:
        if heavy_kind == "plain":
            heavy_rows = [backend.encode_ids([HEAVY_TEXT], None, truncate=False)[0]] * 40  # ~40 sub-rounds
            heavy = [asyncio.ensure_future(batcher.embed(heavy_rows, -1))]
        else:  # 40 longer late-chunking documents of two tasks, about one per sub-round
            heavy = [asyncio.ensure_future(late_job(batcher, ("retrieval.passage", "separation")[i % 2], 3))
                     for i in range(40)]
        while batcher.rounds < 3:  # the heavy work is under way
            await asyncio.sleep(0.001)
        submitted = batcher.rounds
        if small_kind == "plain":
            got = await batcher.embed(small, -1)
            assert same_vectors(got, backend.embed_ids(small, [-1]))
        else:
            got = await late_job(batcher, "retrieval.query", prepared=True)  # counted from when it is queued
            alone = backend.late_chunk_prepared(backend.prepare([DOCUMENT], [SPANS], "retrieval.query", True))[0]
            assert same_vectors(got, alone)
        assert batcher.rounds - submitted <= 2
        assert not all(job.done() for job in heavy)  # the heavy work was still going on
        await asyncio.gather(*heavy)


def _job(rows: list[int], done: int, late_task: str | None, queued_at: float,
         progressed_at: float | None = None) -> _Job:
    """A job for the (pure) scheduler: only its sizes, progress, kind and times matter."""
    future: Any = None
    if late_task is not None:
        return _Job(future, 1, rows[0], document="x", spans=[(0, 1)], task=late_task, queued_at=queued_at)
    return _Job(future, len(rows), sum(rows), sequences=[np.zeros(n, dtype=np.int64) for n in rows],
                done_rows=done, queued_at=queued_at, progressed_at=progressed_at if done else None)


pool_jobs = st.lists(
    st.tuples(st.lists(st.integers(1, 90) | st.integers(200, 1500), min_size=1, max_size=6), st.integers(0, 5),
              st.sampled_from([None, None, "retrieval.passage", "separation"]), st.floats(0, 10),
              st.floats(0, 20)),
    min_size=1, max_size=12,
)


def next_unit(job: _Job) -> int:
    """Tokens of the smallest piece of ``job`` a sub-round can take: its next row, or its whole document."""
    return job.tokens if job.late else len(job.sequences[job.done_rows])


@settings(max_examples=200, deadline=None)
@given(spec=pool_jobs, budget=st.integers(1, 200) | st.integers(200, 5000), overdue_before=st.floats(0, 10))
def test_next_sub_round_is_within_budget_most_urgent_first_and_fair_to_fresh_jobs(spec, budget, overdue_before):
    pool = [_job(rows, min(done, len(rows) - 1), task, at, at + later) for rows, done, task, at, later in spec]
    pieces = next_sub_round(pool, budget, overdue_before)
    jobs = [piece.job for piece in pieces]
    assert pieces and len({id(job) for job in jobs}) == len(jobs)  # never the same job twice
    for piece in pieces:  # a plain job continues where it stopped, with whole rows
        assert piece.lo == piece.job.done_rows < piece.hi <= len(piece.job.sequences) or piece.job.late
    sizes = [piece.job.tokens if piece.job.late else sum(map(len, piece.job.sequences[piece.lo:piece.hi]))
             for piece in pieces]
    assert sum(sizes[1:]) <= budget - min(sizes[0], budget)  # over budget only by the first row (or document)
    assert jobs[0] is min(pool, key=lambda job: urgency(job, overdue_before))
    overdue = [is_overdue(job, overdue_before) for job in jobs]
    if any(overdue):  # the job longest without progress goes first
        assert overdue[0]
    else:  # otherwise the job with the least work done, then the least left
        assert jobs[0].tokens - jobs[0].remaining_tokens() == min(job.tokens - job.remaining_tokens() for job in pool)
    limit = company_limit(jobs[0], overdue_before)  # a small job's sub-round is not filled with a large job's rows
    assert all(late or job.remaining_tokens() <= limit for job, late in zip(jobs[1:], overdue[1:], strict=True))
    fresh = sorted((job for job in pool if not is_overdue(job, overdue_before)),
                   key=lambda job: urgency(job, overdue_before))
    overdue_tokens = sum(size for size, late in zip(sizes, overdue, strict=True) if late)
    if fresh:  # overdue work leaves room for fresh work: at most half the budget (or its first row alone)
        assert overdue_tokens <= budget * OVERDUE_SHARE or overdue_tokens == sizes[0]
        if next_unit(fresh[0]) <= budget - overdue_tokens and company_limit(jobs[0], overdue_before) == math.inf:
            assert fresh[0] in jobs  # the newest small work is never left for a later sub-round


def test_a_pass_nobody_waits_for_stops_between_layers(small_budget):
    """Inside ``stoppable`` a forward pass checks before every encoder layer; outside it nothing is checked."""
    backend = small_budget
    seqs = [backend.encode_ids(["Berlin is the capital of Germany."], None, truncate=False)[0]]
    checks: list[int] = []

    def gone() -> bool:
        checks.append(1)
        return len(checks) >= 2  # the client leaves after the first layer

    with backend.stoppable(gone), pytest.raises(Abandoned):
        backend.embed_ids(seqs, [-1])
    assert len(checks) == 2
    with backend.stoppable(lambda: False):
        np.testing.assert_array_equal(backend.embed_ids(seqs, [-1]), backend.embed_ids(seqs, [-1]))


async def test_late_chunking_sub_rounds_count_in_the_measured_throughput(small_budget):
    """Retry-After comes from the measured tokens per second: late-chunking work must count, not only plain rows."""
    backend = small_budget
    document = "Berlin is the capital of Germany. It has a famous wall."
    tokens = backend.tokenize_document(document, None).length
    async with running(backend, 0.0) as batcher:
        vectors = await batcher.late_chunk(document, [(0, 33), (34, len(document))], None, tokens)
        assert vectors.shape[0] == 2
        assert batcher.tokens_per_second and batcher.tokens_per_second > 0


@pytest.mark.parametrize(("per_token", "expected"), [(None, 4096), (1e-6, 4096), (1e-4, 2500), (1e-2, 256)])
def test_sub_rounds_are_cut_to_a_quarter_second_at_the_measured_speed(tiny_checkpoint, per_token, expected):
    """A slow engine (or a loaded machine) gets smaller sub-rounds, so a small request's wait stays about the same;
    never below 256 tokens, never above the backend's batch."""
    backend = Embedder.local(str(tiny_checkpoint), device="cpu", token_budget=4096).backend
    batcher = MicroBatcher(backend)
    if per_token is not None:
        batcher.speed.add(1000, 1000 * per_token)
    assert batcher.sub_round_tokens() == expected
