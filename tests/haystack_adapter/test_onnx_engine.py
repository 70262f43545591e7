"""``engine="onnx"`` and ``engine="openvino"`` from Haystack's seat (``backend_options``): an indexing pipeline writes
the engine's vectors into an InMemoryDocumentStore, and a query pipeline retrieves with them."""

from __future__ import annotations

import numpy as np
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder

TEXTS = ["Berlin is the capital of Germany.", "Paris est la capitale de la France.", "東京は日本の首都です。"]


def test_pipelines_on_the_onnx_engine(tiny_onnx_dir, tiny_fp32, graph_engine):
    options = {"model": str(tiny_onnx_dir), "backend_options": {"engine": graph_engine}}
    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("embedder", JinaV3DocumentEmbedder(**options, progress_bar=False))
    indexing.add_component("writer", DocumentWriter(store))
    indexing.connect("embedder", "writer")
    indexing.run({"embedder": {"documents": [Document(content=t) for t in TEXTS]}})
    stored = {d.content: d.embedding for d in store.filter_documents()}
    vectors = np.array([stored[t] for t in TEXTS])
    assert np.abs(vectors - tiny_fp32.embed_documents(TEXTS)).max() <= 1e-5
    query = Pipeline()
    query.add_component("embedder", JinaV3TextEmbedder(**options))
    query.add_component("retriever", InMemoryEmbeddingRetriever(store, top_k=1))
    query.connect("embedder.embedding", "retriever.query_embedding")
    hit = query.run({"embedder": {"text": TEXTS[1]}})["retriever"]["documents"][0]
    assert hit.content == TEXTS[int(np.argmax(vectors @ tiny_fp32.embed_query(TEXTS[1])))]
