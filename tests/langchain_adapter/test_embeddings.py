"""JinaV3Embeddings: task routing seen at the backend, vectors equal to the core's, async = sync, settings and
errors."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from jinav3 import BackendError, Embedder, InvalidInputError
from jinav3.testing import same_vectors
from langchain_jinav3 import JinaV3Embeddings

from .conftest import DIMS

TEXTS = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Kyoto was the old capital."]
QUERY = "Which city is the capital of Germany?"


def test_queries_and_documents_reach_the_backend_with_their_own_task(embeddings, recorded):
    embeddings.embed_query(QUERY)
    embeddings.embed_documents(TEXTS)
    assert recorded.calls == [("embed", "retrieval.query", 1), ("embed", "retrieval.passage", 3)]


async def test_async_calls_route_the_same_way(embeddings, recorded):
    await embeddings.aembed_query(QUERY)
    await embeddings.aembed_documents(TEXTS)
    assert recorded.calls == [("embed", "retrieval.query", 1), ("embed", "retrieval.passage", 3)]


def test_overridden_tasks_are_used(tiny_model, recording_backend):
    model = JinaV3Embeddings(model=tiny_model, device="cpu", query_task="text-matching", document_task=None)
    model._embedder = Embedder(recording_backend)
    recording_backend.calls.clear()
    model.embed_query(QUERY)
    model.embed_documents(TEXTS)
    assert recording_backend.calls == [("embed", "text-matching", 1), ("embed", None, 3)]


@pytest.mark.cpu_class  # the default path, in the precision this CPU class gets: exactly the core's vectors
def test_vectors_equal_the_core_and_are_python_floats(embeddings, tiny_embedder):
    query = embeddings.embed_query(QUERY)
    docs = embeddings.embed_documents(TEXTS)
    assert type(query) is list and all(type(v) is float for v in query)
    assert all(type(row) is list and type(row[0]) is float for row in docs)
    assert same_vectors(query, tiny_embedder.embed([QUERY], "retrieval.query", DIMS)[0])
    assert same_vectors(docs, tiny_embedder.embed(TEXTS, "retrieval.passage", DIMS))
    assert not np.allclose(query, embeddings.embed_documents([QUERY])[0], atol=1e-3)  # the adapters differ
    assert np.linalg.norm(docs, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)


async def test_async_equals_sync(embeddings):
    np.testing.assert_allclose(await embeddings.aembed_query(QUERY), embeddings.embed_query(QUERY), atol=1e-6)
    np.testing.assert_allclose(await embeddings.aembed_documents(TEXTS), embeddings.embed_documents(TEXTS),
                               atol=1e-6)


def test_full_width_and_empty_input(tiny_model, tiny_embedder):
    model = JinaV3Embeddings(model=tiny_model, device="cpu")
    assert len(model.embed_query(QUERY)) == tiny_embedder.dimensions
    assert model.embed_documents([]) == []


def test_one_core_model_per_settings(tiny_model):
    first = JinaV3Embeddings(model=tiny_model, device="cpu", dimensions=8)
    second = JinaV3Embeddings(model_name=tiny_model, device="cpu", document_task="separation")
    assert first.core is second.core  # tasks and width are per call, the loaded model is shared


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"query_task": "retrieval"}, "unknown task 'retrieval'"),
        ({"backend": "remote"}, "backend"),
        ({"device": "cpu", "base_url": "http://127.0.0.1:1"}, "base_url do not apply to backend='local'"),
        ({"device": "cpu", "api_key": "jina_x"}, "api_key do not apply to backend='local'"),
        ({"backend": "api", "device": "cpu"}, "device do not apply to backend='api'"),
        ({"dimensions": 0}, "dimensions must be at least 1"),
        ({"batch_size": 8}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_rejected_with_the_reason(tiny_model, settings, message):
    with pytest.raises(ValidationError, match=message):
        JinaV3Embeddings(model=tiny_model, **settings)


def test_bad_calls_raise_clear_errors(embeddings):
    with pytest.raises(InvalidInputError, match="got one string"):
        embeddings.embed_documents("Berlin")
    with pytest.raises(InvalidInputError, match=r"texts\[1\] must be a string, got int"):
        embeddings.embed_documents(["Berlin", 3])
    with pytest.raises(InvalidInputError, match="query must be a string"):
        embeddings.embed_query(None)
    too_wide = embeddings.model_copy(update={"dimensions": 64})
    with pytest.raises(InvalidInputError, match="64"):
        too_wide.embed_query(QUERY)


def test_api_key_is_a_secret_from_argument_or_environment(monkeypatch):
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    monkeypatch.setenv("JINAAI_API_KEY", "jina_llama_style")
    from_env = JinaV3Embeddings(backend="api")
    assert isinstance(from_env.api_key, SecretStr) and from_env.api_key.get_secret_value() == "jina_llama_style"
    monkeypatch.setenv("JINA_API_KEY", "jina_preferred")
    assert JinaV3Embeddings(backend="api").api_key.get_secret_value() == "jina_preferred"
    explicit = JinaV3Embeddings(backend="api", api_key="jina_explicit_secret", model="jina-embeddings-v3")
    assert explicit.api_key.get_secret_value() == "jina_explicit_secret"
    for shown in (repr(explicit), str(explicit), explicit.model_dump_json()):
        assert "jina_explicit_secret" not in shown
    assert explicit.backend_options()["api_key"] == "jina_explicit_secret"
    local = JinaV3Embeddings(device="cpu")  # a key in the environment does not bother the local backend
    assert "api_key" not in local.backend_options()


def test_api_backend_matches_the_local_vectors(api_settings, tiny_embedder):
    remote = JinaV3Embeddings(**api_settings, dimensions=DIMS)
    assert "sk-langchain-test" not in repr(remote)
    np.testing.assert_allclose(remote.embed_query(QUERY), tiny_embedder.embed([QUERY], "retrieval.query", DIMS)[0],
                               atol=1e-4)
    np.testing.assert_allclose(remote.embed_documents(TEXTS), tiny_embedder.embed(TEXTS, "retrieval.passage", DIMS),
                               atol=1e-4)


def test_api_backend_without_the_right_key_fails_clearly(api_settings):
    wrong = JinaV3Embeddings(**{**api_settings, "api_key": "sk-wrong"})
    with pytest.raises(BackendError, match="401") as caught:
        wrong.embed_query(QUERY)
    assert "sk-wrong" not in str(caught.value)


def test_int8_dtype_setting(tiny_model, tiny_embedder):
    got = np.asarray(JinaV3Embeddings(model=tiny_model, dtype="int8").embed_query(QUERY))
    assert float(got @ tiny_embedder.embed_query(QUERY)) > 0.99
    with pytest.raises((InvalidInputError, ValidationError), match="unknown dtype"):
        JinaV3Embeddings(model=tiny_model, dtype="int4")
