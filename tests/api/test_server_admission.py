"""Admission by work: the queue is bounded by estimated seconds of work (tokens / measured tokens per second). A
heavy request beyond the bound is refused at once with 503 and ``Retry-After``; a small one still gets in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from jinav3.server.run import BackgroundServer

MODEL = "jina-embeddings-v3"
HEAVY = {"model": MODEL, "input": [f"Berlin is the capital of Germany, number {i}." for i in range(512)]}
SMALL = {"model": MODEL, "input": ["a small query"]}


def test_heavy_requests_beyond_the_bound_are_refused_at_once_and_small_ones_get_in(
        start_server: Callable[..., BackgroundServer]) -> None:
    server = start_server(batch_wait_ms=1000)  # an idle worker waits 1 s for company: the queue fills meanwhile
    url = f"{server.base_url}/embeddings"
    batcher = server.app.state.service.batcher
    with httpx.Client(timeout=60) as client:
        warm = client.post(url, json=HEAVY)  # alone (an empty queue always admits), and measures the rate
        assert warm.status_code == 200
        heavy_seconds = warm.json()["usage"]["total_tokens"] / batcher.tokens_per_second
        batcher.max_queue_seconds = heavy_seconds  # one heavy request fits, two do not
        first: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: first.append(client.post(url, json=HEAVY)))
        thread.start()
        deadline = time.monotonic() + 10
        while batcher.pending == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        started = time.perf_counter()
        second = client.post(url, json=HEAVY)
        refused_in = time.perf_counter() - started
        small = client.post(url, json=SMALL)
        thread.join(60)
    assert second.status_code == 503 and int(second.headers["Retry-After"]) >= 1, second.text
    assert "of work is queued ahead" in second.json()["detail"]
    assert refused_in < 1.0, refused_in
    assert small.status_code == 200 and first[0].status_code == 200
    metrics = httpx.get(f"http://{server.host}:{server.port}/metrics").text
    assert 'jinav3_refusals_total{reason="queue_seconds"} 1.0' in metrics
