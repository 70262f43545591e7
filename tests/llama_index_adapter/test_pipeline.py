"""IngestionPipeline and VectorStoreIndex: late-chunked vectors survive, mismatches are refused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.schema import Document, TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores import SimpleVectorStore

from jinav3 import BrokenSealError, Embedder, InvalidInputError
from llama_index.embeddings.jinav3 import JinaV3Embedding


@pytest.fixture
def spy_parser(parser, recorded):
    parser._embedder = Embedder(recorded)
    return parser


def _vectors(nodes):
    return {n.node_id: n.embedding for n in nodes}


def test_pipeline_keeps_late_chunked_vectors_in_vector_store_and_docstore(
    spy_parser, spy_embed_model, recorded, documents
):
    expected = {(n.ref_doc_id, n.start_char_idx): n.embedding for n in spy_parser.get_nodes_from_documents(documents)}
    recorded.calls.clear()
    vector_store, docstore = SimpleVectorStore(), SimpleDocumentStore()
    pipeline = IngestionPipeline(
        transformations=[spy_parser, spy_embed_model], vector_store=vector_store, docstore=docstore,
        disable_cache=True,
    )
    nodes = pipeline.run(documents=documents)
    assert recorded.calls == [("late_chunk", "retrieval.passage", 2)]  # the embed model embedded nothing
    assert {(n.ref_doc_id, n.start_char_idx): n.embedding for n in nodes} == expected
    stored = vector_store.data.embedding_dict
    assert set(stored) == {n.node_id for n in nodes}
    for node in nodes:
        np.testing.assert_allclose(stored[node.node_id], node.embedding)
    assert set(docstore.get_all_document_hashes().values()) == {"doc-a", "doc-b"}
    assert pipeline.run(documents=documents) == []  # the docstore de-duplicates unchanged documents

    recorded.calls.clear()
    index = VectorStoreIndex(nodes, embed_model=spy_embed_model)  # the pipeline's nodes, vectors kept
    assert recorded.calls == []
    hits = index.as_retriever(similarity_top_k=len(nodes)).retrieve("capital of Germany")
    assert recorded.calls == [("embed", "retrieval.query", 1)]
    assert {hit.node.node_id for hit in hits} == {n.node_id for n in nodes}


async def test_async_pipeline_equals_sync(parser, embed_model, documents):
    sync = IngestionPipeline(transformations=[parser, embed_model], disable_cache=True).run(documents=documents)
    asynchronous = await IngestionPipeline(transformations=[parser, embed_model], disable_cache=True).arun(
        documents=documents)
    assert [(n.text, n.start_char_idx) for n in asynchronous] == [(n.text, n.start_char_idx) for n in sync]
    np.testing.assert_allclose([n.embedding for n in asynchronous], [n.embedding for n in sync], atol=1e-5)


def test_vector_store_index_keeps_pre_embedded_nodes(spy_parser, spy_embed_model, recorded, documents):
    nodes = spy_parser.get_nodes_from_documents(documents)
    recorded.calls.clear()
    index = VectorStoreIndex(nodes, embed_model=spy_embed_model, storage_context=StorageContext.from_defaults())
    assert recorded.calls == []
    stored = index.vector_store.data.embedding_dict
    for node in nodes:
        np.testing.assert_allclose(stored[node.node_id], node.embedding)


def test_embed_model_embeds_only_unmarked_nodes(parser, spy_embed_model, recorded, documents, tiny_embedder):
    late = parser.get_nodes_from_documents(documents)
    before = _vectors(late)
    plain = TextNode(text="A plain node without a vector.", metadata={"kind": "note"})
    spy_embed_model([*late, plain])
    assert recorded.calls == [("embed", "retrieval.passage", 1)]
    assert _vectors(late) == before
    expected = tiny_embedder.embed([plain.get_content("embed")], dimensions=spy_embed_model.dimensions)[0]
    np.testing.assert_allclose(plain.embedding, expected, atol=1e-5)


@pytest.mark.parametrize("change", [{"dimensions": 8}, {"dimensions": None}])
def test_pipeline_refuses_an_embed_model_of_another_space(parser, tiny_model, documents, change):
    other = JinaV3Embedding(model_name=tiny_model, device="cpu", **change)
    pipeline = IngestionPipeline(transformations=[parser, other], disable_cache=True)
    with pytest.raises(InvalidInputError, match=r"late-chunked in vector space .*@16.* not .*@(8|32)"):
        pipeline.run(documents=documents)


def test_marked_node_without_vector_is_an_error(parser, embed_model, documents):
    node = parser.get_nodes_from_documents(documents)[0]
    node.embedding = None
    with pytest.raises(InvalidInputError, match="late-chunked node without its vector"):
        embed_model([node])


def test_a_plain_embed_model_cannot_overwrite_late_chunked_vectors(parser, documents):
    """LlamaIndex's own BaseEmbedding.__call__ re-embeds every node; a late-chunked node refuses the new vector."""
    pipeline = IngestionPipeline(transformations=[parser, MockEmbedding(embed_dim=16)], disable_cache=True)
    with pytest.raises(BrokenSealError, match="cannot change embedding of late-chunked node"):
        pipeline.run(documents=documents)


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_a_pipeline_with_its_cache_on_gives_each_document_its_own_nodes(parser, embed_model, run_async):
    """LlamaIndex's IngestionCache keys a step's output by its input text: a document edited to the text of one
    parsed in an earlier run got that one's nodes (ids, ref_doc_id). The parser's key is new on every run and its
    seals name the document, so neither the parser's nor the embed step's output is ever another document's."""
    vector_store = SimpleVectorStore()
    pipeline = IngestionPipeline(transformations=[parser, embed_model], docstore=SimpleDocumentStore(),
                                 vector_store=vector_store, docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE)
    texts = {"doc-1": "Berlin is big.", "doc-3": "Kyoto is old."}
    for edit in ({}, {"doc-3": "Yes."}, {"doc-1": "Yes."}):
        texts.update(edit)
        documents = [Document(text=t, id_=i) for i, t in texts.items()]
        asyncio.run(pipeline.arun(documents=documents)) if run_async else pipeline.run(documents=documents)
    assert pipeline.cache.cache.get_all(collection=pipeline.cache.collection)  # the cache was on and used
    assert sorted(vector_store.data.text_id_to_ref_doc_id.values()) == ["doc-1", "doc-3"]


def test_documents_with_equal_text_each_reach_the_store(parser):
    """The case the cache got wrong: two documents edited to the same text in turn, each synced on its own."""
    vector_store = SimpleVectorStore()
    pipeline = IngestionPipeline(transformations=[parser], docstore=SimpleDocumentStore(), vector_store=vector_store,
                                 docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE, disable_cache=True)
    texts = {"doc-1": "Berlin is big.", "doc-3": "Kyoto is old."}
    for edit in ({}, {"doc-3": "Yes."}, {"doc-1": "Yes."}):
        texts.update(edit)
        pipeline.run(documents=[Document(text=t, id_=i) for i, t in texts.items()])
    assert {ref for ref in vector_store.data.text_id_to_ref_doc_id.values()} == {"doc-1", "doc-3"}
