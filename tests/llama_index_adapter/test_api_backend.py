"""backend="api": the same vectors through a real ``jinav3 serve`` app on 127.0.0.1 (tiny checkpoint, key
required) as through the local model, for both the embedding model and the node parser."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="jinav3[server] is not installed")
pytest.importorskip("uvicorn", reason="jinav3[server] is not installed")
pytest.importorskip("prometheus_client", reason="jinav3[server] is not installed")

from llama_index.core import Document

from jinav3 import Embedder
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer
from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

KEY = "sk-llama-index-test"
TEXT = "Berlin is the capital of Germany. It has more than three million inhabitants."


@pytest.fixture(scope="module")
def server(tiny_embedder: Embedder) -> Iterator[BackgroundServer]:
    running = BackgroundServer(create_app(tiny_embedder, ServerConfig(api_keys=(KEY,)))).start()
    yield running
    running.stop()


async def test_embedding_and_parser_over_http_match_local(server, tiny_embedder):
    remote = JinaV3Embedding(backend="api", base_url=server.base_url, api_key=KEY, dimensions=16,
                             max_retries=0, full_dimensions=tiny_embedder.dimensions)
    assert KEY not in remote.to_json()
    np.testing.assert_allclose(remote.get_query_embedding(TEXT),
                               tiny_embedder.embed([TEXT], "retrieval.query", 16)[0], atol=1e-4)
    np.testing.assert_allclose(await remote.aget_text_embedding_batch([TEXT]),
                               tiny_embedder.embed([TEXT], "retrieval.passage", 16), atol=1e-4)
    parser = JinaV3LateChunkingNodeParser(embed_model=remote, chunker="sentences")
    nodes = parser.get_nodes_from_documents([Document(text=TEXT)])
    local = tiny_embedder.late_chunk(TEXT, spans=[(n.start_char_idx, n.end_char_idx) for n in nodes],
                                     task="retrieval.passage", dimensions=16)
    np.testing.assert_allclose([n.embedding for n in nodes], [c.embedding for c in local], atol=1e-4)
    assert remote(nodes) == nodes  # same space: the late-chunked vectors are kept
