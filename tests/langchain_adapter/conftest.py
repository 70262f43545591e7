"""Fixtures of the LangChain adapter tests: embeddings and splitter on the tiny checkpoint, a backend that notes
the task of every call, and the real ``jinav3 serve`` app on 127.0.0.1 for ``backend="api"``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_core", reason="langchain-core is not installed")
pytest.importorskip("langchain_jinav3", reason="langchain-jinav3 is not installed")

from langchain_core.documents import Document

from jinav3 import Embedder
from jinav3.backends.local import LocalBackend
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

DIMS = 16  # the tiny checkpoint is 32 wide
API_KEY = "sk-langchain-test"

# Both documents contain the sentence "It has a famous wall.": its two late-chunked vectors differ by context.
DOC_A = (
    "Berlin is the capital of Germany. It has a famous wall. More than three million people live there.\n\n"
    "The city is also one of the sixteen states of Germany."
)
DOC_B = "China is a large country in Asia. It has a famous wall. Beijing is its capital."


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path) -> str:
    return str(tiny_checkpoint)


@pytest.fixture
def embeddings(tiny_model: str) -> JinaV3Embeddings:
    """Embeddings on the tiny checkpoint (16 of 32 dimensions)."""
    return JinaV3Embeddings(model=tiny_model, device="cpu", dimensions=DIMS)


@pytest.fixture
def splitter(embeddings: JinaV3Embeddings) -> JinaV3LateChunkingSplitter:
    return JinaV3LateChunkingSplitter(embeddings, add_start_index=True)


@pytest.fixture
def recorded(embeddings: JinaV3Embeddings, recording_backend: LocalBackend) -> LocalBackend:
    """Points ``embeddings`` at the recording backend (same checkpoint, same vectors) with an empty call log."""
    recording_backend.calls.clear()
    embeddings._embedder = Embedder(recording_backend)
    return recording_backend


@pytest.fixture
def documents() -> list[Document]:
    return [
        Document(page_content=DOC_A, metadata={"source": "a.txt", "city": "Berlin"}),
        Document(page_content=DOC_B, metadata={"source": "b.txt", "country": "China"}),
    ]


@pytest.fixture(scope="session")
def api_server(tiny_embedder: Embedder) -> Iterator[object]:
    """The real server app on loopback, serving the tiny checkpoint and requiring ``API_KEY`` (skipped without
    the server extra)."""
    pytest.importorskip("fastapi", reason="jinav3[server] is not installed")
    pytest.importorskip("prometheus_client", reason="jinav3[server] is not installed")
    from jinav3.server import ServerConfig, create_app
    from jinav3.server.run import BackgroundServer

    server = BackgroundServer(create_app(tiny_embedder, ServerConfig(api_keys=(API_KEY,)))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_settings(api_server, tiny_embedder: Embedder) -> dict[str, object]:
    """``JinaV3Embeddings`` settings that reach the loopback server."""
    return {
        "backend": "api", "base_url": api_server.base_url, "api_key": API_KEY, "max_retries": 0,
        "full_dimensions": tiny_embedder.dimensions,
    }
