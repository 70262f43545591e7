"""backend="api": the Secret is resolved only then, and the components give the same vectors through a real
``jinav3 serve`` app on 127.0.0.1 (tiny checkpoint, key required) as the local model does."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="jinav3[server] is not installed")
pytest.importorskip("uvicorn", reason="jinav3[server] is not installed")
pytest.importorskip("prometheus_client", reason="jinav3[server] is not installed")

from haystack import Document
from haystack.utils import Secret

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from jinav3 import BackendError, Embedder, SentenceChunker
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer
from jinav3.usage import TokenUsage

from .texts import BERLIN

KEY = "sk-haystack-test"


@pytest.fixture(scope="module")
def server(tiny_embedder: Embedder) -> Iterator[BackgroundServer]:
    running = BackgroundServer(create_app(tiny_embedder, ServerConfig(api_keys=(KEY,)))).start()
    yield running
    running.stop()


@pytest.fixture
def api(server: BackgroundServer, tiny_embedder: Embedder) -> dict[str, object]:
    options = {"base_url": server.base_url, "full_dimensions": tiny_embedder.dimensions, "backoff": 0.01}
    return {"backend": "api", "backend_options": options}


def test_the_key_comes_from_either_env_var_only_for_the_api(monkeypatch, api, tiny_embedder):
    monkeypatch.setenv("JINAAI_API_KEY", KEY)
    result = JinaV3TextEmbedder(**api, dimensions=16).run(text="Which city was divided?")
    expected = tiny_embedder.embed(["Which city was divided?"], "retrieval.query", 16)[0]
    np.testing.assert_allclose(result["embedding"], expected, atol=1e-4)
    usage = TokenUsage()
    tiny_embedder.embed(["Which city was divided?"], "retrieval.query", usage=usage)
    assert result["meta"] == {"model": "jina-embeddings-v3", "usage": usage.as_openai()}  # the server's count


def test_a_wrong_key_is_a_clear_backend_error(api):
    embedder = JinaV3DocumentEmbedder(**api, api_key=Secret.from_env_var("NO_SUCH_KEY_VAR", strict=False),
                                      progress_bar=False)
    with pytest.raises(BackendError):
        embedder.run(documents=[Document(content="hello")])


async def test_splitter_and_document_embedder_over_http_match_local(monkeypatch, api, tiny_embedder):
    monkeypatch.setenv("JINA_API_KEY", KEY)
    source = Document(content=BERLIN)
    remote = (await JinaV3LateChunkingSplitter(**api, progress_bar=False).run_async(documents=[source]))["documents"]
    spans = SentenceChunker().spans(BERLIN)
    local = tiny_embedder.late_chunk(BERLIN, spans=spans, task="retrieval.passage")
    np.testing.assert_allclose([d.embedding for d in remote], [c.embedding for c in local], atol=1e-4)
    plain = JinaV3DocumentEmbedder(**api, progress_bar=False).run(documents=[source])
    np.testing.assert_allclose(plain["documents"][0].embedding, tiny_embedder.embed([BERLIN])[0], atol=1e-4)


async def test_meta_usage_is_the_count_the_server_reports_on_every_component(monkeypatch, api, tiny_embedder):
    """jina-haystack's contract: meta["usage"] with prompt_tokens and total_tokens, here equal to what the local
    backend reads for the same work (jinav3 serve counts as it does), sync and async."""
    monkeypatch.setenv("JINA_API_KEY", KEY)
    source = Document(content=BERLIN)
    late, plain = TokenUsage(), TokenUsage()
    tiny_embedder.late_chunk(BERLIN, usage=late)
    tiny_embedder.embed([BERLIN], "retrieval.passage", usage=plain)
    splitter = JinaV3LateChunkingSplitter(**api, progress_bar=False)
    documents = JinaV3DocumentEmbedder(**api, progress_bar=False)
    for result in (splitter.run(documents=[source]), await splitter.run_async(documents=[source])):
        assert result["meta"] == {"model": "jina-embeddings-v3", "usage": late.as_openai()}
    for result in (documents.run(documents=[source]), await documents.run_async(documents=[source])):
        assert result["meta"]["usage"] == plain.as_openai()
