"""``engine="onnx"`` and ``engine="openvino"`` from LlamaIndex's seat: a VectorStoreIndex built and queried on each
engine of the ONNX graph."""

from __future__ import annotations

import numpy as np
from llama_index.core import Document, VectorStoreIndex

from llama_index.embeddings.jinav3 import JinaV3Embedding

TEXTS = ["Berlin is the capital of Germany.", "Paris est la capitale de la France.", "東京は日本の首都です。"]


def test_index_on_the_onnx_engine(tiny_onnx_dir, tiny_fp32, graph_engine):
    model = JinaV3Embedding(model_name=str(tiny_onnx_dir), engine=graph_engine)
    index = VectorStoreIndex.from_documents([Document(text=t) for t in TEXTS], embed_model=model)
    stored = np.array([index.vector_store.get(node_id) for node_id in index.index_struct.nodes_dict])
    assert np.abs(stored - tiny_fp32.embed_documents(TEXTS)).max() <= 1e-5
    best = TEXTS[int(np.argmax(tiny_fp32.embed_documents(TEXTS) @ tiny_fp32.embed_query(TEXTS[1])))]
    hit = index.as_retriever(similarity_top_k=1).retrieve(TEXTS[1])[0]
    assert hit.node.get_content() == best
