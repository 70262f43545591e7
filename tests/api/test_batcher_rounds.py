"""The micro-batcher's rounds: every job gets exactly its own vectors whatever it is gathered with, small jobs are
answered before large ones of the same round, and a job whose client left mid-round is skipped."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import TASKS, Embedder
from jinav3.server.batcher import MicroBatcher

WORDS = ["Berlin", "is", "the", "capital", "of", "Germany", "東京", "😀", "river"]


@pytest.fixture(scope="module")
def small_budget(tiny_checkpoint):
    """Batches of at most 64 tokens, so one round splits into many sub-rounds."""
    return Embedder.local(str(tiny_checkpoint), device="cpu", token_budget=64).backend


async def run_round(backend, jobs):
    batcher = MicroBatcher(backend, max_wait=0.05)
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.embed(seqs, task_id) for seqs, task_id in jobs))
    finally:
        await batcher.close()


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
        np.testing.assert_allclose(vectors, backend.embed_ids(seqs, [task_id] * len(seqs)), atol=1e-5)


async def test_small_jobs_are_answered_first_and_left_jobs_are_skipped(small_budget):
    backend = small_budget
    big = [backend.encode_ids([" ".join(WORDS * 6)], None, truncate=False)[0]] * 6
    small = [backend.encode_ids(["Berlin"], None, truncate=False)[0]]
    batcher = MicroBatcher(backend, max_wait=0.05)
    batcher.start()
    try:
        finished: list[str] = []

        async def job(name, seqs):
            await batcher.embed(seqs, -1)
            finished.append(name)

        left = asyncio.ensure_future(batcher.embed(big, -1))
        tasks = [asyncio.ensure_future(job("big", big)), asyncio.ensure_future(job("small", small))]
        await asyncio.sleep(0)
        left.cancel()  # its client went away before its sub-round ran
        await asyncio.gather(*tasks)
        assert finished == ["small", "big"]
        assert batcher.dropped >= 1
    finally:
        await batcher.close()
