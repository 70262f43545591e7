"""docs/migration.md's way to keep an index built by an official integration (no task sent): the options it names
give exactly the core's no-task vectors in all three adapters, while the defaults give other vectors. The page's
own block runs on MiniLM, which has no task adapters; the tiny checkpoint has LoRA banks, so here tasks differ."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["Berlin was divided by a wall.", "Kyoto has two thousand temples."]


@pytest.fixture(scope="module")
def no_task(tiny_embedder) -> np.ndarray:
    vectors = tiny_embedder.embed(TEXTS, task=None)
    assert not np.allclose(vectors, tiny_embedder.embed(TEXTS, task="retrieval.passage"), atol=1e-3)
    return vectors


def test_langchain(tiny_checkpoint, no_task):
    from langchain_jinav3 import JinaV3Embeddings

    old = JinaV3Embeddings(model=str(tiny_checkpoint), device="cpu", query_task=None, document_task=None)
    np.testing.assert_allclose(old.embed_documents(TEXTS), no_task, atol=1e-6)
    np.testing.assert_allclose([old.embed_query(t) for t in TEXTS], no_task, atol=1e-6)
    default = JinaV3Embeddings(model=str(tiny_checkpoint), device="cpu")
    assert not np.allclose(default.embed_documents(TEXTS), no_task, atol=1e-3)


def test_llama_index(tiny_checkpoint, no_task):
    from llama_index.embeddings.jinav3 import JinaV3Embedding

    old = JinaV3Embedding(model_name=str(tiny_checkpoint), device="cpu", task=None)
    np.testing.assert_allclose(old.get_text_embedding_batch(TEXTS), no_task, atol=1e-6)
    np.testing.assert_allclose([old.get_query_embedding(t) for t in TEXTS], no_task, atol=1e-6)
    default = JinaV3Embedding(model_name=str(tiny_checkpoint), device="cpu")
    assert not np.allclose([default.get_query_embedding(t) for t in TEXTS], no_task, atol=1e-3)


def test_haystack(tiny_checkpoint, no_task):
    from haystack import Document

    from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder

    tiny = {"model": str(tiny_checkpoint), "backend_options": {"device": "cpu"}}
    query = JinaV3TextEmbedder(**tiny, task=None)
    np.testing.assert_allclose([query.run(text=t)["embedding"] for t in TEXTS], no_task, atol=1e-6)
    documents = JinaV3DocumentEmbedder(**tiny, task=None, progress_bar=False)
    embedded = documents.run(documents=[Document(content=t) for t in TEXTS])["documents"]
    np.testing.assert_allclose([d.embedding for d in embedded], no_task, atol=1e-6)
    default = JinaV3TextEmbedder(**tiny).run(text=TEXTS[0])["embedding"]
    assert not np.allclose(default, no_task[0], atol=1e-3)
