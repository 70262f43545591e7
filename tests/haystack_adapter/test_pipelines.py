"""The components inside Haystack pipelines: YAML round trip with no allow-list, indexing into an in-memory store,
retrieval of the expected chunk, Pipeline.run_async, and the example script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from haystack import Document, Pipeline
from haystack.components.preprocessors import DocumentSplitter
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter

from .texts import BERLIN, KYOTO

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "haystack_rag.py"
CORPUS = EXAMPLE.parent / "corpus"


def test_yaml_round_trip_loads_without_allow_list_and_runs(tiny):
    pipeline = Pipeline()
    pipeline.add_component("splitter", DocumentSplitter(split_by="period", split_length=1))
    pipeline.add_component("embedder", JinaV3DocumentEmbedder(**tiny, late_chunking=True, dimensions=16,
                                                              progress_bar=False))
    pipeline.add_component("late", JinaV3LateChunkingSplitter(**tiny, dimensions=16, progress_bar=False))
    pipeline.add_component("writer", DocumentWriter(document_store=InMemoryDocumentStore()))
    pipeline.connect("splitter.documents", "embedder.documents")
    pipeline.connect("embedder.documents", "writer.documents")
    text = Pipeline()
    text.add_component("query", JinaV3TextEmbedder(**tiny, dimensions=16))

    for original in (pipeline, text):
        dumped = original.dumps()
        assert "JINA_API_KEY" in dumped and "retrieval." in dumped
        loaded = Pipeline.loads(dumped)  # haystack_integrations.* is allowed by default
        assert loaded.to_dict()["components"] == original.to_dict()["components"]

    loaded = Pipeline.loads(pipeline.dumps())
    docs = [Document(content=BERLIN), Document(content=KYOTO)]
    result = loaded.run({"splitter": {"documents": docs}, "late": {"documents": docs}},
                        include_outputs_from={"late"})
    assert result["writer"]["documents_written"] == 6
    assert len(result["late"]["documents"]) == 6
    stored = loaded.get_component("writer").document_store.filter_documents()
    assert all(len(doc.embedding) == 16 for doc in stored)
    query = Pipeline.loads(text.dumps()).run({"query": {"text": "capital"}})["query"]
    assert len(query["embedding"]) == 16


async def test_indexing_and_query_pipelines_sync_and_async(tiny):
    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("splitter", JinaV3LateChunkingSplitter(**tiny, progress_bar=False))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("splitter.documents", "writer.documents")
    sources = [Document(content=BERLIN), Document(content=KYOTO)]
    await indexing.run_async({"splitter": {"documents": sources}})
    assert store.count_documents() == 6

    query = Pipeline()
    query.add_component("embedder", JinaV3TextEmbedder(**tiny))
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=2))
    query.connect("embedder.embedding", "retriever.query_embedding")
    sync = query.run({"embedder": {"text": "temples"}})["retriever"]["documents"]
    asyn = (await query.run_async({"embedder": {"text": "temples"}}))["retriever"]["documents"]
    assert [d.id for d in sync] == [d.id for d in asyn]
    assert np.allclose([d.score for d in sync], [d.score for d in asyn], atol=1e-5)


def test_example_pipelines_retrieve_the_expected_chunk(minilm_dir, load_example):
    example = load_example("haystack_rag")
    store = InMemoryDocumentStore()
    files = sorted(CORPUS.glob("*.txt"))
    example.indexing_pipeline(str(minilm_dir), store, None).run({"converter": {"sources": files}})
    stored = store.filter_documents()
    assert len(stored) > len(files) and all(doc.embedding is not None for doc in stored)
    search = example.query_pipeline(str(minilm_dir), store, None, top=1)
    for question, expected in [("Which airport replaced Tegel?", "Tegel"),
                               ("Wo steht die Elbphilharmonie?", "Elbphilharmonie")]:
        best = search.run({"embedder": {"text": question}})["retriever"]["documents"][0]
        assert expected in best.content


def test_example_script_runs_with_the_tiny_checkpoint(tiny_checkpoint):
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--model", str(tiny_checkpoint), "--dimensions", "16", "--top", "2",
         "Which airport replaced Tegel?"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "late-chunked sentences from 4 files" in done.stdout
    assert done.stdout.count(".txt[") == 2
