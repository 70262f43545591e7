"""The API client against a fault-injecting real HTTP server: retries, backoff, Retry-After, no input lost."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from jinav3 import Embedder, InvalidInputError
from jinav3.backends.api import ApiError, estimate_tokens

TEXTS = [f"text number {i}: " + "word " * (i % 7) for i in range(25)]


FAKE_WIDTH = 16  # the fault server's vector width


def sent_inputs(server: Any) -> list[list[str]]:
    return [b["input"] for b in server.bodies]


def test_request_body_asks_for_raw_full_width_base64(fault_server: Any, fault_api: Embedder) -> None:
    fault_api.embed(["a", "b"], task="classification", dimensions=8)
    body = fault_server.bodies[0]
    assert body == {"model": "jina-embeddings-v3", "input": ["a", "b"], "embedding_type": "base64",
                    "normalized": False, "task": "classification"}


def test_retries_429_503_malformed_and_short_bodies_then_succeeds(
    fault_server: Any, fault_api: Embedder
) -> None:
    fault_server.script = ["429", "503", "garbage", "short", "500"]
    fault_server.retry_after = "1"
    started = time.monotonic()
    vectors = fault_api.embed(TEXTS, normalized=False)
    assert time.monotonic() - started >= 1.0  # the 429's Retry-After was honoured
    np.testing.assert_array_equal(vectors, fault_server.vectors(TEXTS))
    assert fault_server.requests == 6
    assert fault_api.backend.retries == 5
    assert all(inputs == TEXTS for inputs in sent_inputs(fault_server))


def test_batches_keep_order_and_lose_nothing_across_failures(fault_server: Any) -> None:
    emb = Embedder.api(base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH, backoff=0.01, max_batch_inputs=10)
    fault_server.script = ["ok", "503", "ok", "429"]
    vectors = emb.embed(TEXTS, normalized=False)
    np.testing.assert_array_equal(vectors, fault_server.vectors(TEXTS))
    sent = sent_inputs(fault_server)
    assert [len(s) for s in sent] == [10, 10, 10, 5, 5]
    assert sent[0] + sent[2] + sent[3] == TEXTS
    assert emb.backend.retries == 2


async def test_async_batches_run_concurrently_and_survive_failures(fault_server: Any) -> None:
    emb = Embedder.api(base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH, backoff=0.01,
                       max_batch_inputs=3, max_concurrency=4)
    fault_server.script = ["503", "ok", "429", "garbage", "drop"]
    vectors = await emb.aembed(TEXTS, normalized=False)
    np.testing.assert_array_equal(vectors, fault_server.vectors(TEXTS))
    assert fault_server.requests == 9 + 4
    assert emb.backend.retries == 4
    await emb.backend.aclose()


def test_slow_response_times_out_and_is_retried(fault_server: Any) -> None:
    emb = Embedder.api(base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH, backoff=0.01, timeout=0.3)
    fault_server.script = ["slow"]
    fault_server.slow_seconds = 1.0
    np.testing.assert_array_equal(emb.embed(["x", "y"], normalized=False), fault_server.vectors(["x", "y"]))
    assert emb.backend.retries == 1
    assert fault_server.requests == 2


def test_exhausted_retries_raise_a_clear_error(fault_server: Any) -> None:
    emb = Embedder.api(base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH, backoff=0.01, max_retries=2)
    fault_server.default = "500"
    with pytest.raises(ApiError, match=r"failed after 3 attempts.*max_retries=2.*injected 500") as info:
        emb.embed(["x"])
    assert info.value.status == 500 and info.value.attempts == 3
    assert fault_server.requests == 3


@pytest.mark.parametrize("status", ["400", "401", "403", "404", "422"])
def test_client_errors_are_not_retried_and_carry_the_detail(fault_server: Any, fault_api: Embedder,
                                                             status: str) -> None:
    fault_server.default = status
    with pytest.raises(ApiError, match=f"HTTP {status} CODE_{status}: injected {status}") as info:
        fault_api.embed(["x"])
    assert info.value.status == int(status)
    assert info.value.detail == f"injected {status}" and info.value.request_id == "rid-1"
    assert fault_server.requests == 1


def test_api_key_is_sent_but_never_shown(fault_server: Any) -> None:
    secret = "jina_" + "s3cr3t" * 10
    emb = Embedder.api(api_key=secret, base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH)
    emb.embed(["x"])
    assert fault_server.headers[0]["Authorization"] == f"Bearer {secret}"
    fault_server.default = "401"
    fault_server.echo_detail = f" for key {secret}"  # a server that echoes the key back
    with pytest.raises(ApiError) as info:
        emb.embed(["x"])
    for shown in (repr(emb), repr(emb.backend), str(emb.describe()), str(info.value), info.value.detail):
        assert secret not in shown
    assert "check the API key" in str(info.value)


def test_api_key_from_either_environment_variable(fault_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    monkeypatch.setenv("JINAAI_API_KEY", "jina_from_llamaindex_env")
    Embedder.api(base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH).embed(["x"])
    monkeypatch.setenv("JINA_API_KEY", "jina_from_env")
    Embedder.api(base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH).embed(["x"])
    assert [h["Authorization"] for h in fault_server.headers] == ["Bearer jina_from_llamaindex_env",
                                                                   "Bearer jina_from_env"]


def test_public_endpoint_without_a_key_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    monkeypatch.delenv("JINAAI_API_KEY", raising=False)
    with pytest.raises(InvalidInputError, match="JINA_API_KEY"):
        Embedder.api()


def test_wrong_width_names_the_fix(fault_server: Any) -> None:
    emb = Embedder.api(base_url=fault_server.base_url)  # expects 1024, the fake server gives 16
    with pytest.raises(ApiError, match=f"pass full_dimensions={FAKE_WIDTH}"):
        emb.embed(["x"])
    assert fault_server.requests == 1


def _document(sentences: int) -> tuple[str, list[tuple[int, int]]]:
    parts = [f"Sentence {i} talks about the city and its river number {i}." for i in range(sentences)]
    spans, at = [], 0
    for p in parts:
        spans.append((at, at + len(p)))
        at += len(p) + 1
    return " ".join(parts), spans


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_long_document_is_spread_over_requests_with_preceding_context(
    fault_server: Any, fault_api: Embedder, mode: str
) -> None:
    document, spans = _document(60)
    other, other_spans = _document(3)
    fault_server.script = ["503"]
    kwargs = {"spans": [spans, other_spans], "window": 300, "normalized": False}
    if mode == "sync":
        results = fault_api.late_chunk_many([document, other], **kwargs)
    else:
        results = await fault_api.alate_chunk_many([document, other], **kwargs)
    chunks = [document[s:e] for s, e in spans]
    for doc_chunks, result in zip([chunks, [other[s:e] for s, e in other_spans]], results, strict=True):
        assert [c.text for c in result] == doc_chunks
        # a chunk cut by a hand-over is the weighted sum of its two (here equal) answers: equal up to rounding
        np.testing.assert_allclose(np.stack([c.embedding for c in result]), fault_server.vectors(doc_chunks),
                                   rtol=1e-6, atol=1e-6)
    bodies = fault_server.bodies[1:]
    assert all(b["late_chunking"] is True for b in bodies)
    long_requests = [b["input"] for b in bodies if b["input"][-1] in chunks]
    assert len(long_requests) > 2
    new_from = 0
    for inputs in sorted(long_requests, key=lambda x: chunks.index(x[-1])):
        first = chunks.index(inputs[0])
        assert inputs == chunks[first : first + len(inputs)]  # consecutive chunks of one document
        assert sum(estimate_tokens(c) for c in inputs) <= 300  # within the request budget
        if new_from:
            assert first < new_from  # led by chunks already embedded elsewhere: context
        new_from = first + len(inputs)
    assert new_from == len(chunks)


def test_api_late_chunking_rejects_what_the_api_cannot_do(fault_api: Embedder) -> None:
    with pytest.raises(InvalidInputError, match="include_special_tokens"):
        fault_api.late_chunk("One. Two.", include_special_tokens=False)
    with pytest.raises(InvalidInputError, match="window must be between"):
        fault_api.late_chunk("One. Two.", window=9000)


def test_token_estimate_is_conservative_for_cjk_and_latin() -> None:
    assert estimate_tokens("東京は日本の首都です") >= 10
    assert estimate_tokens("Berlin is the capital of Germany.") >= 8
    assert estimate_tokens("") >= 1
