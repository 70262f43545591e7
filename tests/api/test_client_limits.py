"""The API client's time limits, retry budget, redaction and late-chunking recovery, against real loopback
servers: the fault server (misbehaving on purpose) and ``jinav3 serve`` on the offline MiniLM."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import Embedder, InvalidInputError
from jinav3.backends.api import ApiError
from jinav3.backends.api_late import count_rejection, plan_requests
from jinav3.backends.api_retry import RetryPolicy, RetryState, Transient
from jinav3.late_chunking.windows import plan_windows
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer

FAKE_WIDTH = 16


def fake_api(server: Any, **options: Any) -> Embedder:
    options = {"full_dimensions": FAKE_WIDTH, "backoff": 0.01, "max_backoff": 0.05, "tokenizer": None, **options}
    return Embedder.api(base_url=server.base_url, **options)


def test_request_timeout_bounds_a_trickling_answer(fault_server: Any) -> None:
    """A server sending one byte every 0.05 s keeps every read under ``timeout`` but never finishes in time."""
    emb = fake_api(fault_server, timeout=2.0, request_timeout=0.5, max_retries=1)
    fault_server.default = "trickle"
    fault_server.slow_seconds = 0.05
    started = time.monotonic()
    with pytest.raises(ApiError, match=r"request_timeout=0.5 s") as info:
        emb.embed(["x"])
    assert time.monotonic() - started < 2.5  # two attempts of 0.5 s plus a short backoff, not the ~40 s trickle
    assert info.value.attempts == 2
    emb.close()


async def test_request_timeout_applies_to_async_calls_too(fault_server: Any) -> None:
    emb = fake_api(fault_server, timeout=2.0, request_timeout=0.4, max_retries=0)
    fault_server.default = "trickle"
    fault_server.slow_seconds = 0.05
    started = time.monotonic()
    with pytest.raises(ApiError, match="request_timeout"):
        await emb.aembed(["x"])
    assert time.monotonic() - started < 1.5
    await emb.backend.aclose()


def test_busy_answers_are_retried_until_the_budget_not_max_retries(fault_server: Any) -> None:
    emb = fake_api(fault_server, max_retries=1, retry_budget=30)
    fault_server.script = ["503", "429", "503", "409", "503", "503"]
    np.testing.assert_array_equal(emb.embed(["a"], normalized=False), fault_server.vectors(["a"]))
    assert fault_server.requests == 7 and emb.backend.retries == 6
    emb.close()


def test_retry_budget_ends_a_busy_streak_with_a_message_naming_it(fault_server: Any) -> None:
    emb = fake_api(fault_server, retry_budget=0.5, backoff=0.05, max_backoff=0.1)
    fault_server.default = "503"
    started = time.monotonic()
    with pytest.raises(ApiError, match=r"retry_budget=0.5 s"):
        emb.embed(["a"])
    assert time.monotonic() - started < 2.0
    emb.close()


def test_a_retry_after_beyond_the_budget_fails_at_once(fault_server: Any) -> None:
    emb = fake_api(fault_server, retry_budget=60)
    fault_server.default = "429"
    fault_server.retry_after = "3600"
    started = time.monotonic()
    with pytest.raises(ApiError, match=r"retry after 3600 s.*retry_budget=60"):
        emb.embed(["a"])
    assert time.monotonic() - started < 2.0 and fault_server.requests == 1
    emb.close()


@settings(max_examples=40, deadline=None)
@given(retry_after=st.floats(0, 50), attempts=st.integers(1, 20), budget=st.floats(1, 100))
def test_waits_honour_retry_after_with_jitter_and_never_exceed_the_budget(
    retry_after: float, attempts: int, budget: float
) -> None:
    state = RetryState(RetryPolicy(retry_budget=budget, backoff=0.5, max_backoff=30))
    state.attempts = attempts
    try:
        wait = state.delay(Transient("busy", 503, retry_after))
    except Exception as stop:  # GiveUp: only when the server asks for more than the budget has left
        assert retry_after > budget - state.elapsed, stop
        return
    assert retry_after <= wait <= budget
    assert wait <= retry_after + max(retry_after, 0.5) / 2


def test_jitter_spreads_clients_told_the_same_retry_after() -> None:
    waits = {RetryState(RetryPolicy()).delay(Transient("busy", 503, 1.0)) for _ in range(20)}
    assert len(waits) > 10 and min(waits) >= 1.0 and max(waits) <= 1.5


def test_credentials_in_base_url_never_appear(fault_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    password, user = "Pa55w0rd-s3cret", "alice-user"
    url = fault_server.base_url.replace("http://", f"http://{user}:{password}@")
    emb = Embedder.api(base_url=url, full_dimensions=FAKE_WIDTH + 1, backoff=0.01, max_retries=1, tokenizer=None)
    fault_server.echo_detail = f" at {url}"
    shown = [repr(emb), repr(emb.backend), str(emb.describe())]
    with caplog.at_level(logging.INFO, logger="jinav3"):
        for behaviour in ("ok", "500", "400"):  # wrong width, exhausted retries, a client error echoing the URL
            fault_server.default = behaviour
            with pytest.raises(ApiError) as info:
                emb.embed(["x"])
            shown += [str(info.value), info.value.detail]
        dead = Embedder.api(base_url=f"http://{user}:{password}@127.0.0.1:9/v1", retry_budget=0.3, tokenizer=None)
        with pytest.raises(ApiError) as info:
            dead.embed(["x"])
        shown.append(str(info.value))
    shown += [record.getMessage() for record in caplog.records]
    for text in shown:
        assert password not in text and user not in text, text
    emb.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=25), limit=st.integers(60, 200),
       window=st.integers(64, 400))
def test_late_chunking_replans_what_the_server_refuses_and_loses_no_chunk(
    fault_server: Any, sizes: list[int], limit: int, window: int
) -> None:
    """The fault server counts one token per character (far above the estimate) and refuses late-chunking
    requests over ``limit``: every chunk still gets its own vector, in order, from a request within the limit."""
    chunks = [f"c{i}" + "w" * size for i, size in enumerate(sizes)]
    document = " ".join(chunks)
    spans, at = [], 0
    for chunk in chunks:
        spans.append((at, at + len(chunk)))
        at += len(chunk) + 1
    fault_server.bodies.clear()
    fault_server.late_token_limit = limit
    emb = fake_api(fault_server)
    result = emb.late_chunk(document, spans=spans, window=window, normalized=False)
    assert [(c.start, c.end) for c in result] == spans
    # a chunk cut by a hand-over is the weighted sum of its two answers (here equal): equal up to float32 rounding
    np.testing.assert_allclose(np.stack([c.embedding for c in result]), fault_server.vectors(chunks), rtol=1e-6,
                               atol=1e-6)
    for body in fault_server.bodies:  # every request: consecutive chunks of the document
        first = chunks.index(body["input"][0])
        assert body["input"] == chunks[first : first + len(body["input"])]
    emb.close()


def test_a_chunk_too_long_on_its_own_is_a_clear_error(fault_server: Any) -> None:
    fault_server.late_token_limit = 20
    emb = fake_api(fault_server)
    with pytest.raises(ApiError, match=r"chunk 1 .* on its own .*chunk_size.*max_request_tokens"):
        emb.late_chunk("short one. " + "x" * 50 + ".", spans=[(0, 10), (11, 62)])
    emb.close()


@settings(max_examples=300, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=1, max_size=60), budget=st.integers(10, 120),
       overlap_share=st.floats(0, 0.99), max_inputs=st.integers(1, 20), data=st.data())
def test_plan_keeps_every_chunk_once_within_the_limits(
    counts: list[int], budget: int, overlap_share: float, max_inputs: int, data: st.DataObject
) -> None:
    """Whole documents and re-planned sub-ranges: in order, every chunk kept whole by one request, or (cut by a
    hand-over) by two neighbouring ones whose weights add up to one; every request within the limits (a chunk over
    the budget alone)."""
    lo = data.draw(st.integers(0, len(counts) - 1))
    hi = data.draw(st.integers(lo + 1, len(counts)))
    plans = plan_requests(counts, budget, int(budget * overlap_share), max_inputs, lo, hi)
    weight = np.zeros(len(counts))
    for p in plans:
        assert p.start <= p.keep_start < p.keep_end <= p.end and p.end - p.start <= max_inputs
        assert sum(counts[p.start : p.end]) <= budget or p.end - p.start == 1
        weight[p.keep_start : p.keep_end] += 1
        weight[p.keep_start] += p.first_weight - 1
        weight[p.keep_end - 1] += p.last_weight - 1
        assert 0 < p.first_weight <= 1 and 0 < p.last_weight <= 1
    np.testing.assert_allclose(weight[lo:hi], 1.0, atol=1e-9)
    assert not weight[:lo].any() and not weight[hi:].any()
    for a, b in itertools.pairwise(plans):
        assert b.keep_start == a.keep_end - (a.last_weight < 1)


def test_plan_hands_over_at_the_middle_of_the_overlap() -> None:
    """Ten-token chunks, 50-token requests sharing 20 tokens: the local windows' cuts fall on chunk boundaries,
    two shared chunks, the cut between them, so every chunk at a hand-over keeps a chunk of context on both sides."""
    plans = plan_requests([10] * 20, budget=50, overlap=20)
    assert [(p.start, p.keep_start, p.keep_end, p.end) for p in plans][:2] == [(0, 0, 4, 5), (3, 4, 7, 8)]
    for p in plans:
        assert p.keep_start - p.start >= (1 if p.start else 0) and p.end - p.keep_end >= (1 if p.end < 20 else 0)


def test_requests_sit_where_the_local_windows_do_and_share_a_chunk_the_hand_over_cuts() -> None:
    """MiniLM's window (254 tokens of content sharing 63) over 20- and 25-token chunks: each request starts at the
    chunk boundary nearest the local window's start, and a chunk the local hand-over cuts is kept by both
    neighbouring requests, weighted by its tokens on either side of the cut."""
    counts = [20] * 10 + [25] * 30
    bounds = np.concatenate([[0], np.cumsum(counts)])
    windows = plan_windows(int(bounds[-1]), 254, 63)
    plans = plan_requests(counts, 254, 63)
    assert len(plans) == len(windows)
    for plan, window in zip(plans, windows, strict=True):
        assert abs(bounds[plan.start] - window.start) <= max(counts) / 2
        assert sum(counts[plan.start : plan.end]) <= 254
    first, second = plans[0], plans[1]
    cut = windows[0].keep_end  # token 222, inside chunk 10 (tokens 200-225)
    assert (first.keep_end, second.keep_start) == (11, 10)
    share = (cut - 200) / 25
    assert first.last_weight == pytest.approx(share) and second.first_weight == pytest.approx(1 - share)


@pytest.fixture(scope="module")
def minilm_server(minilm_embedder: Embedder) -> Any:
    with BackgroundServer(create_app(minilm_embedder, ServerConfig())) as server:
        yield server


def test_late_chunking_through_a_minilm_server_recovers_from_its_256_token_limit(
    minilm_server: Any, minilm_embedder: Embedder
) -> None:
    """The client plans 8192-token requests; the server allows 256 and counts exactly: the client re-plans."""
    sentences = [f"Sentence {i} describes the river, the bridges and the old town number {i}." for i in range(60)]
    document = " ".join(sentences)
    api = Embedder.api(base_url=minilm_server.base_url, model="all-MiniLM-L6-v2", full_dimensions=384,
                       tokenizer=None)
    chunks = api.late_chunk(document, "sentences")
    assert [c.text for c in chunks] == sentences
    assert all(np.isfinite(c.embedding).all() and c.embedding.shape == (384,) for c in chunks)
    assert api.backend._late_budget is not None and api.backend._late_budget < 8192  # learnt (in estimate units)
    api.close()


def test_an_exact_local_tokenizer_plans_requests_the_server_accepts(minilm_server: Any, minilm_dir: Any) -> None:
    sentences = [f"Satz {i}: Die Brücke über den Fluss wurde {1800 + i} gebaut." for i in range(40)]
    api = Embedder.api(base_url=minilm_server.base_url, model="all-MiniLM-L6-v2", full_dimensions=384,
                       tokenizer=minilm_dir, max_request_tokens=250)
    chunks = api.late_chunk(" ".join(sentences), "sentences")
    assert [c.text for c in chunks] == sentences
    assert api.backend._late_budget is None  # nothing was refused: the counts were exact
    assert api.backend.retries == 0
    api.close()


def test_tokenizer_argument_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="tokenizer must be"):
        Embedder.api(base_url="http://127.0.0.1:9/v1", tokenizer=42)


@pytest.fixture(scope="module")
def few_inputs_server(minilm_embedder: Embedder) -> Any:
    """``jinav3 serve`` taking at most 7 inputs per request (the Jina API takes 2,048; the client plans 2,048)."""
    with BackgroundServer(create_app(minilm_embedder, ServerConfig(max_inputs=7))) as server:
        yield server


def minilm_api(server: Any, **options: Any) -> Embedder:
    return Embedder.api(base_url=server.base_url, model="all-MiniLM-L6-v2", full_dimensions=384, tokenizer=None,
                        **options)


def test_a_servers_lower_input_limit_is_learnt_from_its_refusal(few_inputs_server: Any,
                                                                minilm_embedder: Embedder) -> None:
    """Plain embeddings: the refused batch is split to the server's stated limit, and later calls plan with it
    from the start, giving exactly what a client told the limit gets."""
    texts = [f"Text {i} about bridges over the river." for i in range(30)]
    api = minilm_api(few_inputs_server)
    first = api.embed(texts)
    assert api.backend._input_limit == 7
    told = minilm_api(few_inputs_server, max_batch_inputs=7)
    np.testing.assert_array_equal(first, told.embed(texts))
    np.testing.assert_allclose(first, minilm_embedder.embed(texts), atol=2e-2)
    api.close()
    told.close()


async def test_late_chunking_learns_the_input_limit_and_keeps_every_chunk(few_inputs_server: Any) -> None:
    """Late chunking a 30-chunk document: the refused request is planned again within 7 inputs (the hand-over
    rule unchanged), every chunk comes back once, in order; the next document is planned within the limit at once,
    exactly as by a client told the limit."""
    sentences = [f"Sentence {i} describes the river, the bridges and the old town number {i}." for i in range(30)]
    document = " ".join(sentences)
    api = minilm_api(few_inputs_server)
    chunks = await api.alate_chunk(document, "sentences")
    assert [c.text for c in chunks] == sentences
    assert api.backend._input_limit == 7
    assert all(np.isfinite(c.embedding).all() for c in chunks)
    told = minilm_api(few_inputs_server, max_batch_inputs=7)
    again, fresh = await api.alate_chunk(document, "sentences"), await told.alate_chunk(document, "sentences")
    for a, b in zip(again, fresh, strict=True):
        np.testing.assert_array_equal(a.embedding, b.embedding)
    await api.backend.aclose()
    await told.backend.aclose()


def test_input_count_refusals_are_recognised_by_code_or_by_the_apis_message() -> None:
    """The Jina API's wording (no code) and ``jinav3 serve``'s code; a stated limit is used, else half is tried;
    other refusals are not mistaken for it."""
    detail = '"input" length 2049 is larger than the largest allowed size 2048'
    assert count_rejection(400, None, detail, 2049) == 2048
    assert count_rejection(400, "INPUT_TOO_MANY_ITEMS", "too many", 10) == 5
    assert count_rejection(400, None, "Failed to encode text", 10) is None
    assert count_rejection(500, None, detail, 2049) is None
