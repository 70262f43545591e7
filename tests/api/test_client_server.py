"""``Embedder.api`` against the real ``jinav3 serve`` app on loopback: the same vectors as the local backend."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from jinav3 import TASKS, Embedder
from jinav3.matryoshka import decode_base64
from jinav3.testing import CORPUS

TEXTS = CORPUS[:9]
DOCUMENT = " ".join(CORPUS[:5])  # sentences joined by single spaces: the server's join reproduces the document


def same(a: Any, b: Any, embedding_type: str) -> None:
    if embedding_type == "base64":
        a, b = np.stack([decode_base64(x) for x in a]), np.stack([decode_base64(x) for x in b])
    if embedding_type in ("float", "base64"):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task", [*TASKS, None])
def test_every_task_matches_the_local_backend(api: Embedder, tiny_embedder: Embedder, task: str | None) -> None:
    np.testing.assert_allclose(api.embed(TEXTS, task), tiny_embedder.embed(TEXTS, task), rtol=0, atol=1e-6)


@pytest.mark.parametrize("embedding_type", ["float", "binary", "ubinary", "base64"])
@pytest.mark.parametrize("dimensions", [None, 8])
def test_dimensions_and_embedding_types_match(
    api: Embedder, tiny_embedder: Embedder, embedding_type: str, dimensions: int | None
) -> None:
    for normalized in (True, False):
        kwargs = {"dimensions": dimensions, "embedding_type": embedding_type, "normalized": normalized}
        same(api.embed(TEXTS, "retrieval.passage", **kwargs),
             tiny_embedder.embed(TEXTS, "retrieval.passage", **kwargs), embedding_type)


def test_query_and_document_roles(api: Embedder, tiny_embedder: Embedder) -> None:
    np.testing.assert_allclose(api.embed_query("capital of Germany?"),
                               tiny_embedder.embed_query("capital of Germany?"), atol=1e-6)
    np.testing.assert_allclose(api.embed_documents(TEXTS, dimensions=16),
                               tiny_embedder.embed_documents(TEXTS, dimensions=16), atol=1e-6)


def test_results_do_not_depend_on_the_batch_size(server: Any, api: Embedder, tiny_embedder: Embedder) -> None:
    small = Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions, max_batch_inputs=2,
                         max_batch_tokens=40)
    np.testing.assert_allclose(small.embed(CORPUS), api.embed(CORPUS), rtol=0, atol=1e-5)
    small.close()


@pytest.mark.parametrize("task", ["retrieval.passage", "text-matching", None])
def test_late_chunking_matches_the_local_backend(api: Embedder, tiny_embedder: Embedder, task: str | None) -> None:
    remote = api.late_chunk(DOCUMENT, "sentences", task=task, dimensions=16)
    local = tiny_embedder.late_chunk(DOCUMENT, "sentences", task=task, dimensions=16)
    assert len(remote) >= 5 and " ".join(c.text for c in remote) == DOCUMENT  # the server's join is the document
    assert [(c.start, c.end, c.text) for c in remote] == [(c.start, c.end, c.text) for c in local]
    np.testing.assert_allclose(np.stack([c.embedding for c in remote]), np.stack([c.embedding for c in local]),
                               atol=1e-6)


async def test_async_equals_sync(api: Embedder) -> None:
    documents = [DOCUMENT, " ".join(CORPUS[5:9])]
    sync_vectors = api.embed(TEXTS, "classification", 16)
    sync_chunks = api.late_chunk_many(documents)
    async_vectors, async_chunks = await asyncio.gather(
        api.aembed(TEXTS, "classification", 16), api.alate_chunk_many(documents)
    )
    # concurrent requests may share a server batch (different padding), hence a float tolerance
    np.testing.assert_allclose(async_vectors, sync_vectors, rtol=0, atol=1e-6)
    for a, b in zip(async_chunks, sync_chunks, strict=True):
        assert [(c.start, c.end) for c in a] == [(c.start, c.end) for c in b]
        np.testing.assert_allclose(np.stack([c.embedding for c in a]), np.stack([c.embedding for c in b]), atol=1e-6)
    await api.backend.aclose()


async def test_concurrent_requests_of_different_tasks_and_dimensions_share_batches(
    start_server: Any, tiny_embedder: Embedder
) -> None:
    server = start_server(batch_wait_ms=200)
    api = Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions, max_concurrency=16)
    calls = [(task, dims) for task in TASKS for dims in (None, 4)]
    batcher = server.server.config.app.state.service.batcher
    results = await asyncio.gather(*(api.aembed(TEXTS[i % 4 :], task, dims) for i, (task, dims) in enumerate(calls)))
    for i, ((task, dims), got) in enumerate(zip(calls, results, strict=True)):
        np.testing.assert_allclose(got, tiny_embedder.embed(TEXTS[i % 4 :], task, dims), rtol=0, atol=1e-5)
    assert batcher.rounds < len(calls)  # requests were answered from shared rounds
    await api.backend.aclose()


def test_overloaded_server_answers_503_with_retry_after_and_the_client_waits(
    start_server: Any, tiny_embedder: Embedder
) -> None:
    server = start_server(max_pending=1, batch_wait_ms=300)
    api = Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions, max_batch_inputs=2,
                       max_concurrency=3, backoff=0.01)
    vectors = asyncio.run(api.aembed(TEXTS[:6], "separation"))
    np.testing.assert_allclose(vectors, tiny_embedder.embed(TEXTS[:6], "separation"), rtol=0, atol=1e-5)
    assert api.backend.retries >= 1
