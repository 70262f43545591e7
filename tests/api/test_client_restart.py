"""The API client rides out a server restart: a real server stopped (or killed) under a bounded load and started
again on the same port after a delay; every call is answered once, with the local backend's vectors."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jinav3 import Embedder
from jinav3.backends.api import ApiError
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer
from jinav3.testing import CORPUS, free_port, serve_command

TEXTS = [CORPUS[i % len(CORPUS) : i % len(CORPUS) + 3] for i in range(30)]
DOCUMENT = " ".join(CORPUS[:6])


def client(base_url: str, width: int, **options: Any) -> Embedder:
    return Embedder.api(base_url=base_url, full_dimensions=width, tokenizer=None, backoff=0.05, max_backoff=0.5,
                        **options)


async def test_async_calls_ride_out_a_stop_and_start_on_the_same_port(tiny_fp32: Embedder) -> None:
    """In-process server: stopped gracefully under load, restarted 1.5 s later on the same port."""
    port = free_port()
    first = BackgroundServer(create_app(tiny_fp32, ServerConfig()), port=port).start()
    emb = client(first.base_url, tiny_fp32.dimensions, retry_budget=20, max_concurrency=4)
    done: list[int] = []

    async def call(i: int) -> np.ndarray:
        vectors = await emb.aembed(TEXTS[i], "text-matching", normalized=False)
        done.append(i)
        return vectors

    async def restart() -> BackgroundServer:
        while len(done) < 5:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(first.stop)
        await asyncio.sleep(1.5)
        return await asyncio.to_thread(BackgroundServer(create_app(tiny_fp32, ServerConfig()), port=port).start)

    started = time.monotonic()
    results, second = await asyncio.gather(asyncio.gather(*(call(i) for i in range(len(TEXTS)))), restart())
    try:
        assert sorted(done) == list(range(len(TEXTS)))  # every call answered, once
        for i, got in enumerate(results):
            np.testing.assert_allclose(got, tiny_fp32.embed(TEXTS[i], "text-matching", normalized=False),
                                       rtol=0, atol=1e-6)
        assert emb.backend.retries >= 1 and time.monotonic() - started >= 1.5
    finally:
        await emb.backend.aclose()
        second.stop()


def test_a_server_that_stays_down_fails_with_how_long_and_why() -> None:
    emb = client(f"http://127.0.0.1:{free_port()}/v1", 16, retry_budget=1.0, max_retries=0)
    started = time.monotonic()
    with pytest.raises(ApiError, match=r"failed after \d+ attempts in 1\.\d s \(retry_budget=1 s spent; "
                                       r"failures: ConnectError x\d+\); last error: ConnectError") as info:
        emb.embed(["x"])
    assert 1.0 <= time.monotonic() - started < 2.0 and info.value.attempts > 2  # retried despite max_retries=0
    emb.close()


def test_sync_calls_ride_out_a_kill_and_a_slow_restart(tiny_checkpoint: Path, tiny_fp32: Embedder,
                                                         tmp_path: Path) -> None:
    """``jinav3 serve`` killed with SIGKILL mid-load, started again on the same port 20 s later (plus its
    start-up): the sync client's calls (plain and late chunking) all come back, equal to the local backend."""
    port = free_port()
    emb = client(f"http://127.0.0.1:{port}/v1", tiny_fp32.dimensions, retry_budget=90)
    answers: dict[int, Any] = {}
    failures: list[BaseException] = []

    def load() -> None:
        for i in range(len(TEXTS)):
            try:
                if i % 10 == 9:
                    answers[i] = emb.late_chunk(DOCUMENT, "sentences", normalized=False)
                else:
                    answers[i] = emb.embed(TEXTS[i], "retrieval.passage", normalized=False)
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

    worker = threading.Thread(target=load)
    with serve_command(tiny_checkpoint, "--dtype", "float32", log=tmp_path / "first.log", port=port) as (process, _):
        worker.start()
        while len(answers) < 5 and worker.is_alive():
            time.sleep(0.01)
        process.kill()
        process.wait()
        down = time.monotonic()
    time.sleep(20)  # the restart: 20-40 s down
    with serve_command(tiny_checkpoint, "--dtype", "float32", log=tmp_path / "second.log", port=port):
        outage = time.monotonic() - down
        worker.join(120)
    emb.close()
    assert not failures and sorted(answers) == list(range(len(TEXTS))), failures
    local_chunks = tiny_fp32.late_chunk(DOCUMENT, "sentences", normalized=False)
    for i, got in answers.items():
        if i % 10 == 9:
            np.testing.assert_allclose(np.stack([c.embedding for c in got]),
                                       np.stack([c.embedding for c in local_chunks]), rtol=0, atol=1e-5)
        else:
            np.testing.assert_allclose(got, tiny_fp32.embed(TEXTS[i], "retrieval.passage", normalized=False),
                                       rtol=0, atol=1e-6)
    assert outage >= 20


def test_gateway_and_timeout_answers_are_patient_server_errors_are_counted(fault_server: Any) -> None:
    """408/502/504 are retried whatever ``max_retries`` says (a gateway in front of a restarting server); a 500
    counts against it; a 400 or 422 is final at once."""
    emb = client(fault_server.base_url, 16, max_retries=0, retry_budget=10)
    fault_server.script = ["408", "502", "504", "503", "502"]
    np.testing.assert_array_equal(emb.embed(["a"], normalized=False), fault_server.vectors(["a"]))
    assert fault_server.requests == 6
    for status, requests in (("500", 1), ("400", 1), ("422", 1)):
        fault_server.bodies.clear()
        fault_server.script = [status]
        with pytest.raises(ApiError, match=f"HTTP {status}"):
            emb.embed(["a"])
        assert fault_server.requests == requests
    emb.close()


def test_a_stopping_server_closes_the_connection_with_its_503(tiny_fp32: Embedder) -> None:
    """So a client's retry reaches the next server instead of holding this one's keep-alive connection through
    its whole shutdown grace."""
    import httpx

    with BackgroundServer(create_app(tiny_fp32, ServerConfig())) as server:
        server.server.config.app.state.service.stopping = True
        answer = httpx.post(f"{server.base_url}/embeddings", json={"model": "jina-embeddings-v3", "input": ["a"]})
        server.server.config.app.state.service.stopping = False
    assert answer.status_code == 503 and answer.headers["connection"] == "close"
    assert answer.headers["retry-after"] == "1"
