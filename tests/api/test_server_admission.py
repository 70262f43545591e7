"""Admission by work: the queue is bounded by estimated seconds of work (fixed cost per sub-round plus tokens at the
measured rate, calibrated at start). A heavy request beyond the bound is refused at once with 503 and
``Retry-After``; a small one still gets in."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import Embedder
from jinav3.server.run import BackgroundServer
from jinav3.server.throughput import ThroughputModel

MODEL = "jina-embeddings-v3"
HEAVY = {"model": MODEL, "input": [f"Berlin is the capital of Germany, number {i}." for i in range(512)]}
SMALL = {"model": MODEL, "input": ["a small query"]}


@contextmanager
def one_heavy_queued(client: httpx.Client, url: str, batcher: Any) -> Iterator[list[httpx.Response]]:
    """A heavy request sent on another thread and waiting in the queue; its answer in the list on the way out."""
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(client.post(url, json=HEAVY)))
    thread.start()
    deadline = time.monotonic() + 10
    while batcher.pending == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        yield first
    finally:
        thread.join(60)


def test_heavy_requests_beyond_the_bound_are_refused_at_once_and_small_ones_get_in(
        start_server: Callable[..., BackgroundServer]) -> None:
    server = start_server(batch_wait_ms=1000)  # an idle worker waits 1 s for company: the queue fills meanwhile
    url = f"{server.base_url}/embeddings"
    batcher = server.app.state.service.batcher
    with httpx.Client(timeout=60) as client:
        warm = client.post(url, json=HEAVY)  # alone (an empty queue always admits), and measures the rate
        assert warm.status_code == 200
        heavy_seconds = batcher.estimate_seconds(warm.json()["usage"]["total_tokens"])
        batcher.max_queue_seconds = heavy_seconds  # one heavy request fits, two do not
        with one_heavy_queued(client, url, batcher) as first:
            started = time.perf_counter()
            second = client.post(url, json=HEAVY)
            refused_in = time.perf_counter() - started
            small = client.post(url, json=SMALL)
    assert second.status_code == 503 and int(second.headers["Retry-After"]) >= 1, second.text
    assert "of work is queued ahead" in second.json()["detail"]
    assert refused_in < 1.0, refused_in
    assert small.status_code == 200 and first[0].status_code == 200
    metrics = httpx.get(f"http://{server.host}:{server.port}/metrics").text
    assert 'jinav3_refusals_total{reason="queue_seconds"} 1.0' in metrics


def test_a_fresh_server_is_calibrated_and_refuses_excess_work_from_the_first_request(
        start_server: Callable[..., BackgroundServer], tiny_embedder: Embedder) -> None:
    """No request has been computed yet, but the speed measured at start already bounds the queue."""
    server = start_server(batch_wait_ms=1000)
    batcher = server.app.state.service.batcher
    assert batcher.rounds == 0 and batcher.tokens_per_second and batcher.tokens_per_second > 0
    tokens = sum(map(len, tiny_embedder.backend.encode_ids(HEAVY["input"], None, truncate=True)))
    heavy_seconds = batcher.estimate_seconds(tokens)
    assert heavy_seconds and heavy_seconds > 0
    batcher.max_queue_seconds = 1.5 * heavy_seconds  # one heavy request fits, two do not
    url = f"{server.base_url}/embeddings"
    with httpx.Client(timeout=60) as client:
        with one_heavy_queued(client, url, batcher) as first:
            second = httpx.post(url, json=HEAVY, timeout=60)
    assert second.status_code == 503 and int(second.headers["Retry-After"]) >= 1, second.text
    assert first[0].status_code == 200


@settings(max_examples=50, deadline=None)
@given(overhead=st.floats(1e-4, 0.5), per_token=st.floats(1e-6, 1e-2),
       sizes=st.lists(st.integers(1, 5000), min_size=2, max_size=20, unique=True),
       queued=st.integers(0, 10**6), budget=st.integers(1, 10**5))
def test_the_speed_model_recovers_fixed_and_per_token_costs(overhead: float, per_token: float, sizes: list[int],
                                                           queued: int, budget: int) -> None:
    """Sub-rounds of several sizes pin down both terms, so small rounds do not make heavy work look slow."""
    model = ThroughputModel()
    for tokens in sizes:
        model.add(tokens, overhead + tokens * per_token)
    expected = math.ceil(queued / budget) * overhead + queued * per_token
    assert model.seconds(queued, budget) == pytest.approx(expected, rel=1e-3, abs=1e-6)
