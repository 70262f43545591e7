"""Fixtures for the LlamaIndex adapter: models on the tiny checkpoint, and a backend that records its calls."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llama_index.core", reason="llama-index-core is not installed")
pytest.importorskip("llama_index.embeddings.jinav3", reason="llama-index-embeddings-jinav3 is not installed")
pytest.importorskip("llama_index.node_parser.jinav3", reason="llama-index-node-parser-jinav3 is not installed")

from llama_index.core import Document

from jinav3 import Embedder
from jinav3.backends.local import LocalBackend
from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

DIMS = 16  # the tiny checkpoint is 32 wide

DOC_A = (
    "Berlin is the capital of Germany. It has more than three million inhabitants.\n\n"
    "The city is also one of the states of Germany. Late chunking embeds the whole document once."
)
DOC_B = "Paris est la capitale de la France. Elle compte plus de deux millions d'habitants."


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path) -> str:
    return str(tiny_checkpoint)


@pytest.fixture
def embed_model(tiny_model: str) -> JinaV3Embedding:
    return JinaV3Embedding(model_name=tiny_model, device="cpu", dimensions=DIMS)


@pytest.fixture
def recorded(recording_backend: LocalBackend) -> LocalBackend:
    """The recording backend with an empty call log."""
    recording_backend.calls.clear()
    return recording_backend


@pytest.fixture
def spy_embed_model(embed_model: JinaV3Embedding, recorded: LocalBackend) -> JinaV3Embedding:
    """``embed_model`` running on the recording backend (same checkpoint, so the same vectors)."""
    embed_model._embedder = Embedder(recorded)
    return embed_model


@pytest.fixture
def parser(embed_model: JinaV3Embedding) -> JinaV3LateChunkingNodeParser:
    """Late chunking with the embed model's settings and the core sentence chunker."""
    return JinaV3LateChunkingNodeParser(embed_model=embed_model, chunker="sentences")


@pytest.fixture
def documents() -> list[Document]:
    return [
        Document(text=DOC_A, id_="doc-a", metadata={"city": "Berlin"}),
        Document(text=DOC_B, id_="doc-b", metadata={"city": "Paris"}),
    ]
