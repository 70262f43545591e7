"""``GET /metrics`` in Prometheus text format: requests by route and status, inputs and tokens, refusals by
reason, queue depth and queued tokens, batch sizes, and latency split into queue wait and compute. Parsed with
``prometheus_client``'s own parser."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jinav3.server.run import BackgroundServer

MODEL = "jina-embeddings-v3"
KEY = "metrics_key"


def scrape(server: BackgroundServer, **headers: str) -> dict[str, dict[tuple, float]]:
    """``{sample name: {sorted labels: value}}`` of one scrape."""
    answer = httpx.get(f"http://{server.host}:{server.port}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


@pytest.fixture(scope="module")
def watched(start_server: Callable[..., BackgroundServer]) -> BackgroundServer:
    return start_server(max_connections=4, header_timeout=0.3)


def test_metrics_count_requests_inputs_tokens_refusals_and_batches(watched: BackgroundServer) -> None:
    url = f"{watched.base_url}/embeddings"
    before = scrape(watched)
    texts = ["Berlin is the capital of Germany.", "Kyoto has temples.", "Rivers flow."]
    answer = httpx.post(url, json={"model": MODEL, "input": texts}, timeout=30)
    assert answer.status_code == 200
    tokens = answer.json()["usage"]["total_tokens"]
    assert httpx.post(url, json={"model": "other", "input": "x"}, timeout=30).status_code == 400
    assert httpx.post(url, json={"model": MODEL, "input": [0] * 100}, timeout=30).status_code == 422
    assert httpx.post(url, content=b"{}", headers={"Content-Type": "text/plain"}, timeout=30).status_code == 415
    assert httpx.get(f"{watched.base_url}/models", headers={"Host": "evil.example"}).status_code == 400
    assert httpx.get(f"{watched.base_url}/nothing/{time.time()}").status_code == 404
    after = scrape(watched)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("jinav3_requests_total", route="/v1/embeddings", status="200") == 1
    assert grew("jinav3_requests_total", route="/v1/embeddings", status="400") == 1
    assert grew("jinav3_requests_total", route="/v1/embeddings", status="422") == 1
    assert grew("jinav3_requests_total", route="/v1/embeddings", status="415") == 1
    assert grew("jinav3_requests_total", route="/v1/models", status="400") == 1
    assert grew("jinav3_requests_total", route="other", status="404") == 1  # unknown paths: one label value
    assert grew("jinav3_inputs_total") == 3 and grew("jinav3_tokens_total") == tokens
    for reason in ("input_model_not_found", "validation", "unsupported_media_type", "invalid_host"):
        assert grew("jinav3_refusals_total", reason=reason) == 1, reason
    assert grew("jinav3_batch_inputs_count") >= 1 and grew("jinav3_batch_tokens_sum") >= tokens
    assert grew("jinav3_queue_wait_seconds_count") == 1 and grew("jinav3_compute_seconds_count") == 1
    assert grew("jinav3_compute_seconds_sum") > 0
    assert grew("jinav3_request_seconds_count", route="/v1/embeddings") == 4
    assert value(after, "jinav3_queue_inputs") == 0 and value(after, "jinav3_queue_tokens") == 0


def test_connection_refusals_are_counted(watched: BackgroundServer) -> None:
    before = scrape(watched)
    held = [socket.create_connection((watched.host, watched.port)) for _ in range(6)]  # over the cap of 4
    time.sleep(0.8)  # the 4 admitted ones send no head: each gets a 408 after 0.3 s
    for sock in held:
        sock.close()
    after = scrape(watched)
    assert value(after, "jinav3_refusals_total", reason="too_many_connections") > \
        value(before, "jinav3_refusals_total", reason="too_many_connections")
    assert value(after, "jinav3_refusals_total", reason="header_timeout") > \
        value(before, "jinav3_refusals_total", reason="header_timeout")


def test_queue_depth_is_visible_while_work_waits(start_server: Callable[..., BackgroundServer]) -> None:
    slow = start_server(batch_wait_ms=1500)  # the worker waits 1.5 s for company
    with httpx.Client() as client:
        done: list[int] = []
        thread = threading.Thread(target=lambda: done.append(client.post(
            f"{slow.base_url}/embeddings", json={"model": MODEL, "input": ["a b c"] * 5}, timeout=30).status_code))
        thread.start()
        deadline = time.monotonic() + 5
        seen = 0.0
        while time.monotonic() < deadline and not seen:
            seen = value(scrape(slow), "jinav3_queue_inputs")
            time.sleep(0.05)
        thread.join(30)
    assert seen == 5 and done == [200]


def test_metrics_need_the_key_when_one_is_set(start_server: Callable[..., BackgroundServer]) -> None:
    keyed = start_server(api_keys=(KEY,))
    assert httpx.get(f"http://{keyed.host}:{keyed.port}/metrics").status_code == 401
    assert "jinav3_requests_total" in scrape(keyed, Authorization=f"Bearer {KEY}")
