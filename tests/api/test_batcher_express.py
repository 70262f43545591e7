"""The express lane: on the graph engines a small request is computed beside a forward pass under way on the main
lane, not after it, and gets exactly the vectors it gets alone; torch, whose passes cannot overlap, has no express
lane. "Under way" is made certain, not timed: the test holds the main lane's forward-pass lock, as a long pass does."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import TASKS, Embedder
from jinav3.server.batcher import EXPRESS_TOKENS, MicroBatcher
from jinav3.testing import same_vectors

WORDS = ["Berlin", "is", "the", "capital", "of", "Germany", "東京", "😀", "river"]


@pytest.fixture(scope="module", params=["onnx", "openvino"])
def graph_backend(request, tiny_onnx_dir):
    if request.param == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra (jinav3[openvino]) is not installed")
    return Embedder.local(str(tiny_onnx_dir), engine=request.param).backend


@asynccontextmanager
async def running(backend, **options):
    batcher = MicroBatcher(backend, **options)
    batcher.start()
    try:
        yield batcher
    finally:
        await batcher.close()


def ids(backend, text, task="retrieval.passage"):
    return backend.encode_ids([text], task, truncate=False)[0]


async def test_a_query_is_answered_while_the_main_lane_is_busy(graph_backend):
    backend = graph_backend
    task_id = backend._task_id("retrieval.query")
    query = [ids(backend, "Berlin", "retrieval.query")]
    heavy = [ids(backend, " ".join(WORDS * 8))] * 4
    assert sum(map(len, heavy)) > EXPRESS_TOKENS >= len(query[0])
    async with running(backend) as batcher:
        with backend._lock:  # a long pass under way on the main lane
            big = asyncio.ensure_future(batcher.embed(heavy, task_id))
            got = await asyncio.wait_for(batcher.embed(query, task_id), 30)
            assert not big.done()  # the heavy job waits for the main lane; the query did not
        assert same_vectors(got, backend.embed_ids(query, [task_id]))
        assert same_vectors(await big, backend.embed_ids(heavy, [task_id] * len(heavy)))
        assert batcher.express_rounds >= 1


async def test_without_an_express_lane_a_query_waits_for_the_main_lane(graph_backend):
    backend = graph_backend
    query = [ids(backend, "Berlin")]
    task_id = backend._task_id("retrieval.passage")
    async with running(backend, express_tokens=0) as batcher:
        with backend._lock:
            waiting = asyncio.ensure_future(batcher.embed(query, task_id))
            await asyncio.sleep(0.2)
            assert not waiting.done()
        assert same_vectors(await waiting, backend.embed_ids(query, [task_id]))
        assert batcher.express_rounds == 0


def test_torch_has_no_express_lane(tiny_fp32):
    """Torch's task adapter is state of the one model, so two of its passes never overlap: every job goes on the
    main lane whatever ``express_tokens`` says."""
    assert not tiny_fp32.backend.runs_beside
    assert MicroBatcher(tiny_fp32.backend, express_tokens=64).express_tokens == 0


async def _all_at_once(backend, jobs):
    async with running(backend) as batcher:
        got = await asyncio.gather(*(batcher.embed(seqs, task_id) for seqs, task_id in jobs))
        return got, batcher.express_rounds, batcher.rounds


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(st.tuples(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map(" ".join),
                                        min_size=1, max_size=4),
                               st.sampled_from(TASKS)), min_size=1, max_size=10))
def test_every_job_gets_its_own_vectors_on_either_lane(graph_backend, jobs):
    """Jobs of any size and task sent at once (small ones on the express lane, the rest on the main lane, computed
    at the same time): each gets bit for bit its vectors alone."""
    backend = graph_backend
    prepared = [([ids(backend, t, task) for t in texts], backend._task_id(task)) for texts, task in jobs]
    got, express_rounds, rounds = asyncio.run(_all_at_once(backend, prepared))
    for (seqs, task_id), vectors in zip(prepared, got, strict=True):
        assert same_vectors(vectors, backend.embed_ids(seqs, [task_id] * len(seqs)))
    small = sum(sum(map(len, seqs)) <= EXPRESS_TOKENS for seqs, _ in prepared)
    assert (express_rounds > 0) == (small > 0) and rounds >= express_rounds
