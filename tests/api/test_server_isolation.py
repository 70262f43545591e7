"""One client never hurts another: an input that fails, fails alone.

Every input that can fail is checked before it joins a shared batch (a blank late-chunking document is that
request's own 400), and a shared sub-round that still fails is bisected until only the failing job gets the error.
The property test sends random concurrent mixes of valid and invalid requests to the real server: every valid one
gets exactly the answer it gets alone (``same_vectors``), every invalid one its own 4xx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import Embedder
from jinav3.server.batcher import MicroBatcher
from jinav3.server.run import BackgroundServer
from jinav3.testing import same_vectors

MODEL = "jina-embeddings-v3"
WORDS = ["Berlin", "is", "the", "capital", "of", "Germany.", "東京", "river", "wall."]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def shared(start_server: Callable[..., BackgroundServer]) -> BackgroundServer:
    """A server that waits 30 ms for company, so concurrent requests share sub-rounds."""
    return start_server(batch_wait_ms=30.0, max_request_tokens=4000)


def post(server: BackgroundServer, body: dict[str, Any], client: httpx.Client | None = None) -> httpx.Response:
    if client is None:
        return httpx.post(f"{server.base_url}/embeddings", json=body, timeout=60)
    return client.post(f"{server.base_url}/embeddings", json=body, timeout=60)


def vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray([item["embedding"] for item in response.json()["data"]], dtype=np.float32)


text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
valid = st.one_of(
    st.builds(lambda xs, task: {"input": xs, "task": task}, st.lists(text, min_size=1, max_size=3),
              st.sampled_from([None, "retrieval.query", "retrieval.passage"])),
    st.builds(lambda xs, task: {"input": xs, "task": task, "late_chunking": True},
              st.lists(text, min_size=1, max_size=3), st.sampled_from([None, "retrieval.passage"])),
)
invalid = st.sampled_from([
    {"input": [" "], "late_chunking": True},  # a blank search query with late chunking on
    {"input": ["\n\t "], "late_chunking": True, "task": "retrieval.passage"},
    {"input": ["Berlin is.", ""], "late_chunking": True},  # an empty chunk
    {"input": ["Berlin " * 5000]},  # over the context without truncate
    {"input": ["Berlin"], "dimensions": 10_000},
    {"input": ["Berlin"], "model": "no-such-model"},
    {"input": [1, 2, 3]},  # token ids
    {"input": []},
])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mix=st.lists(st.tuples(st.booleans(), valid, invalid), min_size=2, max_size=8))
def test_random_concurrent_mixes_valid_requests_get_their_alone_answer(shared: BackgroundServer, mix: list) -> None:
    bodies = [{"model": MODEL, **(good if ok else bad)} for ok, good, bad in mix]
    alone = [post(shared, body) for body in bodies]  # one at a time: nothing to share a batch with
    with httpx.Client() as client, ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(lambda body: post(shared, body, client), bodies))
    for body, first, second in zip(bodies, alone, together, strict=True):
        if first.status_code == 200:
            assert same_vectors(vectors(second), vectors(first)), body
        else:
            assert 400 <= first.status_code < 500, first.text
            assert second.status_code == first.status_code, (body, second.text)


def test_a_blank_late_chunking_sender_fails_alone(shared: BackgroundServer) -> None:
    good = {"model": MODEL, "input": ["Berlin is the capital.", "It has a wall."], "late_chunking": True}
    bad = {"model": MODEL, "input": [" "], "late_chunking": True}
    expected = vectors(post(shared, good))
    with httpx.Client() as client, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: post(shared, bad if i % 2 else good, client), range(32)))
    for i, answer in enumerate(answers):
        if i % 2:
            assert answer.status_code == 400 and "empty" in answer.json()["detail"], answer.text
        else:
            assert same_vectors(vectors(answer), expected)


async def test_a_failing_shared_sub_round_is_bisected_to_its_culprit(tiny_embedder: Embedder) -> None:
    """A job whose rows the model cannot run (a token id past the vocabulary) shares a sub-round with good jobs:
    only it fails, and the good ones get their own vectors, bit for bit."""
    backend = tiny_embedder.backend
    good = [backend.encode_ids([f"Berlin {word}"], None, truncate=False) for word in WORDS]
    bad = [np.asarray([0, 10**7, 2], dtype=np.int64)]
    batcher = MicroBatcher(backend, max_wait=0.05)
    batcher.start()
    try:
        outcomes = await asyncio.gather(*(batcher.embed(seqs, -1) for seqs in [*good[:4], bad, *good[4:]]),
                                        return_exceptions=True)
    finally:
        await batcher.close()
    assert isinstance(outcomes[4], Exception)
    assert batcher.isolations >= 1
    for seqs, got in zip([*good[:4], *good[4:]], [*outcomes[:4], *outcomes[5:]], strict=True):
        assert same_vectors(got, backend.embed_ids(seqs, [-1]))
