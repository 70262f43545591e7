"""The parser inherits ``Settings.embed_model`` (and refuses a non-jina one at construction); migration keywords
of llama-index-embeddings-jinaai (``task``, ``encoding_*``, ``late_chunking``); binary output through an index."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import SentenceSplitter

from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser


@pytest.fixture
def settings_model(monkeypatch):
    """Set ``Settings.embed_model`` for one test only."""

    def put(model):
        monkeypatch.setattr(Settings, "_embed_model", model)
        return model

    monkeypatch.setattr(Settings, "_embed_model", None)
    return put


def test_the_parser_inherits_settings_embed_model(settings_model, tiny_model, documents):
    model = settings_model(JinaV3Embedding(model_name=tiny_model, device="cpu", dimensions=16,
                                           document_task="text-matching"))
    parser = JinaV3LateChunkingNodeParser(text_splitter=SentenceSplitter(chunk_size=32, chunk_overlap=0))
    assert (parser.model_name, parser.dimensions, parser.task, parser.device) == (tiny_model, 16, "text-matching",
                                                                                  "cpu")
    index = VectorStoreIndex.from_documents(documents, transformations=[parser])  # queries: Settings.embed_model
    hits = index.as_retriever(similarity_top_k=2).retrieve("capital of Germany")
    assert len(hits) == 2 and all(len(h.node.embedding or model.get_query_embedding("x")) == 16 for h in hits)
    with pytest.raises(ValueError, match="dimensions=8 differ"):
        JinaV3LateChunkingNodeParser(dimensions=8)


def test_a_non_jina_settings_embed_model_is_an_error_at_construction(settings_model):
    settings_model(MockEmbedding(embed_dim=16))
    with pytest.raises(ValueError, match=r"Settings\.embed_model is a MockEmbedding"):
        JinaV3LateChunkingNodeParser()


def test_without_settings_the_explicit_settings_are_used(settings_model, tiny_model):
    parser = JinaV3LateChunkingNodeParser(model_name=tiny_model, device="cpu", dimensions=8)
    assert (parser.model_name, parser.dimensions) == (tiny_model, 8)


def test_migration_keywords(tiny_model):
    one_task = JinaV3Embedding(model_name=tiny_model, device="cpu", task="text-matching")
    assert (one_task.query_task, one_task.document_task) == ("text-matching", "text-matching")
    binary = JinaV3Embedding(model_name=tiny_model, device="cpu", encoding_queries="binary",
                             encoding_documents="binary")
    assert binary.embedding_type == "binary"
    with pytest.raises(ValueError, match="one encoding"):
        JinaV3Embedding(encoding_queries="binary", encoding_documents="float")
    with pytest.raises(ValueError, match="either task="):
        JinaV3Embedding(task="text-matching", query_task="retrieval.query")
    with pytest.raises(ValueError, match="JinaV3LateChunkingNodeParser"):
        JinaV3Embedding(late_chunking=True)
    assert JinaV3Embedding(late_chunking=False).document_task == "retrieval.passage"


def test_binary_vectors_through_parser_and_index(tiny_model, tiny_embedder, documents):
    model = JinaV3Embedding(model_name=tiny_model, device="cpu", embedding_type="ubinary")
    parser = JinaV3LateChunkingNodeParser(embed_model=model, chunker="sentences")
    nodes = parser.get_nodes_from_documents(documents)
    assert all(len(n.embedding) == 32 and set(n.embedding) <= {-1.0, 1.0} for n in nodes)  # see test_binary
    spans = [[(n.start_char_idx, n.end_char_idx) for n in nodes if n.ref_doc_id == d.id_] for d in documents]
    expected = tiny_embedder.late_chunk_many([d.text for d in documents], spans=spans, task="retrieval.passage",
                                             embedding_type="binary_float")
    assert [n.embedding for n in nodes] == [c.embedding.tolist() for doc in expected for c in doc]
    query = model.get_query_embedding("capital")
    np.testing.assert_array_equal(query, tiny_embedder.embed(["capital"], "retrieval.query",
                                                             embedding_type="binary_float")[0])
