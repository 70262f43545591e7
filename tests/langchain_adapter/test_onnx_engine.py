"""``engine="onnx"`` and ``engine="openvino"`` from LangChain's seat: the embeddings and the late-chunking splitter run
the engine, and an InMemoryVectorStore gets the core's vectors of that engine (equal to the torch engine's within
1e-5)."""

from __future__ import annotations

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from jinav3 import Embedder
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

TEXTS = ["Berlin is the capital of Germany.", "Paris est la capitale de la France.", "東京は日本の首都です。"]


def test_store_and_splitter_on_the_onnx_engine(tiny_onnx_dir, tiny_fp32, graph_engine):
    embeddings = JinaV3Embeddings(model=str(tiny_onnx_dir), engine=graph_engine)
    core = Embedder.local(str(tiny_onnx_dir), engine=graph_engine)
    store = InMemoryVectorStore(embeddings)
    ids = store.add_texts(TEXTS)
    stored = np.array([store.store[i]["vector"] for i in ids])
    np.testing.assert_array_equal(stored, core.embed_documents(TEXTS))
    assert np.abs(stored - tiny_fp32.embed_documents(TEXTS)).max() <= 1e-5
    best = TEXTS[int(np.argmax(stored @ tiny_fp32.embed_query(TEXTS[1])))]
    assert store.similarity_search(TEXTS[1], k=1)[0].page_content == best
    splitter = JinaV3LateChunkingSplitter(embeddings)
    document = " ".join(TEXTS)
    chunks, vectors = splitter.split_documents_with_embeddings([Document(page_content=document)])
    spans = [(document.index(c.page_content), document.index(c.page_content) + len(c.page_content)) for c in chunks]
    expected = tiny_fp32.late_chunk(document, spans=spans, task="retrieval.passage")
    assert np.abs(np.asarray(vectors) - np.array([c.embedding for c in expected])).max() <= 1e-5
