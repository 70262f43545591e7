"""``embedding_type="binary"`` in LlamaIndex: nodes get the sign bits as ±1 floats of the full width (the official
integration unpacks them to 0/1), never packed bytes read as floats, so a vector store's own cosine ranks exactly as
Hamming distance over the packed bits: in ``SimpleVectorStore`` and in Qdrant (local mode, which ignores binary
quantization and searches the floats exactly)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from pydantic import ValidationError

from llama_index.embeddings.jinav3 import JinaV3Embedding

from ..conftest import binary_scores
from .conftest import DIMS

#: Each example embeds through a framework (seconds on a loaded machine): a failure is reported unshrunk.
SLOW_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
WORDS = ["Berlin", "wall", "river", "old", "city", "is", "big", "Kyoto", "temple", "the", "a", "tower", "green"]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)


def simple_store() -> StorageContext:
    return StorageContext.from_defaults()


def qdrant_store() -> StorageContext:
    qdrant_client = pytest.importorskip("qdrant_client")
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    client = qdrant_client.QdrantClient(":memory:")
    return StorageContext.from_defaults(vector_store=QdrantVectorStore("binary", client=client))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=SLOW_PHASES)
@given(corpus=st.lists(texts, min_size=1, max_size=8), query=texts)
@pytest.mark.parametrize("storage", [simple_store, qdrant_store])
def test_an_index_ranks_by_hamming_distance(tiny_model, storage, corpus, query):
    model = JinaV3Embedding(model_name=tiny_model, device="cpu", dimensions=DIMS, encoding_queries="binary",
                            encoding_documents="binary")
    nodes = [TextNode(text=text) for text in corpus]  # uuid ids: Qdrant takes no others
    index = VectorStoreIndex(nodes, embed_model=model, storage_context=storage())
    vectors = model.get_text_embedding_batch(corpus)
    assert all(len(v) == DIMS and set(v) <= {-1.0, 1.0} for v in vectors)
    hits = index.as_retriever(similarity_top_k=len(corpus)).retrieve(query)
    expected = dict(zip([n.id_ for n in nodes], binary_scores(model.core, query, corpus, DIMS), strict=True))
    assert {hit.node.node_id: pytest.approx(hit.score, abs=1e-6) for hit in hits} == expected


def test_qdrant_local_mode_ignores_binary_quantization():
    """What the guide says about Qdrant: local mode keeps no quantization, so bits are only as good as the vectors."""
    qdrant_client = pytest.importorskip("qdrant_client")
    models = qdrant_client.models
    client = qdrant_client.QdrantClient(":memory:")
    client.create_collection("bq", vectors_config=models.VectorParams(size=DIMS, distance=models.Distance.COSINE),
                             quantization_config=models.BinaryQuantization(binary=models.BinaryQuantizationConfig()))
    assert client.get_collection("bq").config.quantization_config is None


def test_an_encoding_that_is_no_list_of_floats_is_refused():
    with pytest.raises(ValidationError, match="embedding_type"):
        JinaV3Embedding(embedding_type="base64")
