"""JinaV3Embedding: task routing, equality with the core, async, batching, serialisation and bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.ingestion.pipeline import get_transformation_hash
from llama_index.core.schema import TextNode

from jinav3 import Embedder, InvalidInputError
from jinav3.testing import same_vectors
from llama_index.embeddings.jinav3 import JinaV3Embedding

TEXTS = ["Berlin is the capital of Germany.", "Paris est la capitale de la France.", "東京は日本の首都です。",
         "The quick brown fox jumps over the lazy dog.", "Madrid es la capital de España."]
QUERY = "What is the capital of Germany?"


def test_query_and_text_paths_use_their_tasks_at_the_backend(spy_embed_model, recorded):
    spy_embed_model.get_query_embedding(QUERY)
    spy_embed_model.get_text_embedding(TEXTS[0])
    spy_embed_model.get_text_embedding_batch(TEXTS)
    assert recorded.calls == [
        ("embed", "retrieval.query", 1),
        ("embed", "retrieval.passage", 1),
        ("embed", "retrieval.passage", len(TEXTS)),
    ]


def test_index_embeds_documents_as_passages_and_retriever_queries_as_queries(spy_embed_model, recorded):
    nodes = [TextNode(text=text, id_=f"n{i}") for i, text in enumerate(TEXTS)]
    index = VectorStoreIndex(nodes, embed_model=spy_embed_model)
    assert {task for _, task, _ in recorded.calls} == {"retrieval.passage"}
    recorded.calls.clear()
    index.as_retriever(similarity_top_k=2).retrieve(QUERY)
    assert recorded.calls == [("embed", "retrieval.query", 1)]


def test_overridden_tasks_are_used(tiny_model, recorded):
    model = JinaV3Embedding(model_name=tiny_model, device="cpu", query_task="text-matching", document_task=None)
    model._embedder = Embedder(recorded)
    model.get_query_embedding(QUERY)
    model.get_text_embedding_batch(TEXTS[:2])
    assert recorded.calls == [("embed", "text-matching", 1), ("embed", None, 2)]


@pytest.mark.cpu_class  # the default path, in the precision this CPU class gets: exactly the core's vectors
def test_vectors_equal_the_core(embed_model, tiny_embedder):
    dims = embed_model.dimensions
    texts = embed_model.get_text_embedding_batch(TEXTS)
    query = embed_model.get_query_embedding(QUERY)
    assert same_vectors(texts, tiny_embedder.embed(TEXTS, task="retrieval.passage", dimensions=dims))
    assert same_vectors(query, tiny_embedder.embed([QUERY], task="retrieval.query", dimensions=dims)[0])
    assert not np.allclose(query, embed_model.get_text_embedding(QUERY), atol=1e-3)  # the tasks really differ


def test_matryoshka_width_and_unit_norm(embed_model):
    vectors = np.asarray(embed_model.get_text_embedding_batch(TEXTS))
    assert vectors.shape == (len(TEXTS), embed_model.dimensions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert all(type(v) is float for v in embed_model.get_query_embedding(QUERY))


def test_embed_batch_size_flushes_batches(spy_embed_model, recorded):
    spy_embed_model.embed_batch_size = 2
    batched = spy_embed_model.get_text_embedding_batch(TEXTS, show_progress=True)
    assert [n for _, _, n in recorded.calls] == [2, 2, 1]
    spy_embed_model.embed_batch_size = 64
    np.testing.assert_allclose(batched, spy_embed_model.get_text_embedding_batch(TEXTS), atol=1e-5)


async def test_async_equals_sync(embed_model):
    embed_model.embed_batch_size = 2
    np.testing.assert_allclose(await embed_model.aget_text_embedding_batch(TEXTS),
                               embed_model.get_text_embedding_batch(TEXTS), atol=1e-5)
    np.testing.assert_allclose(await embed_model.aget_query_embedding(QUERY),
                               embed_model.get_query_embedding(QUERY), atol=1e-5)
    np.testing.assert_allclose(await embed_model.aget_text_embedding(TEXTS[1]),
                               embed_model.get_text_embedding(TEXTS[1]), atol=1e-5)


def test_settings_embed_model_accepts_it(embed_model):
    previous = Settings._embed_model
    try:
        Settings.embed_model = embed_model
        assert Settings.embed_model is embed_model
        index = VectorStoreIndex.from_documents([Document(text=TEXTS[0])])
        assert index.as_retriever().retrieve(QUERY)[0].node.get_content() == TEXTS[0]
    finally:
        Settings._embed_model = previous


def test_serialisation_round_trip_and_cache_key(embed_model):
    data = embed_model.to_dict()
    assert data["class_name"] == "JinaV3Embedding"
    assert {k: data[k] for k in ("backend", "query_task", "document_task", "dimensions", "device")} == {
        "backend": "local", "query_task": "retrieval.query", "document_task": "retrieval.passage",
        "dimensions": embed_model.dimensions, "device": "cpu",
    }
    restored = JinaV3Embedding.from_dict(data)
    assert restored.to_dict() == data
    assert JinaV3Embedding.from_json(embed_model.to_json()).to_dict() == data
    np.testing.assert_allclose(restored.get_query_embedding(QUERY), embed_model.get_query_embedding(QUERY))
    nodes = [TextNode(text="x")]
    other = JinaV3Embedding.from_dict({**data, "document_task": "text-matching"})
    assert get_transformation_hash(nodes, other) != get_transformation_hash(nodes, embed_model)


def test_pickle_keeps_settings_not_the_model(embed_model):
    query = embed_model.get_query_embedding(QUERY)
    data = pickle.dumps(embed_model)
    assert len(data) < 10_000  # settings only, no weights
    copy = pickle.loads(data)
    assert copy.to_dict() == embed_model.to_dict()
    assert embed_model._embedder is not None  # pickling did not strip the original
    np.testing.assert_allclose(copy.get_query_embedding(QUERY), query)


def test_api_key_never_serialised():
    model = JinaV3Embedding(backend="api", api_key="sk-secret-123", dimensions=256, base_url="http://127.0.0.1:1")
    assert model.api_key.get_secret_value() == "sk-secret-123"
    shown_forms = (json.dumps(model.to_dict()), model.to_json(), json.dumps(model.to_payload()), repr(model))
    for shown in shown_forms:
        assert "sk-secret-123" not in shown
    assert model.to_payload() == {
        "class_name": "JinaV3Embedding", "model_name": "jina-embeddings-v3", "embed_batch_size": 64,
        "backend": "api", "query_task": "retrieval.query", "document_task": "retrieval.passage", "dimensions": 256,
        "embedding_type": "float",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query_task": "retrieval"}, "unknown task 'retrieval'"),
        ({"document_task": "passage"}, "unknown task 'passage'"),
        ({"dimensions": 0}, "dimensions must be at least 1"),
        ({"dimension": 256}, "dimension"),  # a typo is an error, not a silently ignored setting
        ({"backend": "api", "device": "cpu"}, "device do not apply to backend='api'"),
        ({"backend": "local", "api_key": "k"}, "api_key do not apply to backend='local'"),
        ({"backend": "grpc"}, "backend"),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JinaV3Embedding(**kwargs)


def test_dimensions_wider_than_the_model_are_rejected(tiny_model):
    model = JinaV3Embedding(model_name=tiny_model, device="cpu", dimensions=64)
    with pytest.raises(InvalidInputError, match="dimensions must be between 1 and 32"):
        model.get_query_embedding(QUERY)


def test_model_alias_and_defaults():
    assert JinaV3Embedding().model_name == "jinaai/jina-embeddings-v3"
    assert JinaV3Embedding(backend="api").model_name == "jina-embeddings-v3"
    assert JinaV3Embedding(model="some/folder").model_name == "some/folder"


def test_int8_dtype_setting(tiny_model, tiny_embedder):
    query = "Which city had a wall?"
    got = np.asarray(JinaV3Embedding(model_name=tiny_model, dtype="int8").get_query_embedding(query))
    assert float(got @ tiny_embedder.embed_query(query)) > 0.99
    with pytest.raises((InvalidInputError, ValueError), match="unknown dtype"):
        JinaV3Embedding(model_name=tiny_model, dtype="int4")
