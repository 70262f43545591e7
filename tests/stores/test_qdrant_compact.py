"""Qdrant (local mode, on disk) through each framework's own store, with binary and int8 scalar quantization asked
for at collection creation and rescoring with oversampling at query time.

Local mode accepts both and applies neither: it keeps the float vectors and searches them exactly (its
``get_collection`` reports ``quantization_config=None``). So these tests check what a Qdrant server would quantise
(the stored late-chunked vectors; their sign bits, which Qdrant's binary quantization keeps, are the core's binary
codes) and that every framework passes the options through and ranks as the float vectors do; the accuracy of the
quantised search itself is measured in benchmarks/compact_eval.py."""

from __future__ import annotations

import numpy as np
import pytest

from jinav3 import Embedder
from jinav3.compact import binary_codes, top_candidates

from .conftest import DIMS, TEXTS

qdrant_client = pytest.importorskip("qdrant_client")
models = qdrant_client.models

QUANTIZATION = {
    "binary": models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True)),
    "int8": models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
        type=models.ScalarType.INT8, quantile=0.99, always_ram=True)),
}
RESCORE = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=2.0))
QUERY = "Which wall fell?"
#: What local mode says when given search params (it searches exactly); expected here, so not shown.
pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")


def _stored(path, collection: str) -> tuple[list[str], np.ndarray]:
    client = qdrant_client.QdrantClient(path=str(path))
    try:
        points = client.scroll(collection, limit=1000, with_vectors=True, with_payload=True)[0]
        vectors = [p.vector if isinstance(p.vector, list) else next(iter(p.vector.values())) for p in points]
        return [str(p.id) for p in points], np.array(vectors, dtype=np.float32)
    finally:
        client.close()


def _expect_float_ranking(core: Embedder, stored: np.ndarray, found: list[np.ndarray]) -> None:
    query = core.embed([QUERY], "retrieval.query", DIMS)
    best = top_candidates(query @ stored.T, len(found))[0]
    np.testing.assert_allclose(np.array(found) @ query[0], stored[best] @ query[0], atol=1e-5)


def _late_vectors(core: Embedder, texts: list[str]) -> np.ndarray:
    return np.stack([c.embedding for t in TEXTS for c in core.late_chunk(t, chunker="sentences",
                                                                        task="retrieval.passage", dimensions=DIMS)])


@pytest.mark.parametrize("form", sorted(QUANTIZATION))
def test_langchain_qdrant(tmp_path, tiny_checkpoint, form):
    pytest.importorskip("langchain_qdrant")
    pytest.importorskip("langchain_jinav3")
    from langchain_core.documents import Document
    from langchain_qdrant import QdrantVectorStore
    from langchain_qdrant.qdrant import QdrantVectorStoreError

    from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

    embeddings = JinaV3Embeddings(model=str(tiny_checkpoint), device="cpu", dimensions=DIMS)
    chunks = JinaV3LateChunkingSplitter(embeddings).split_documents([Document(t) for t in TEXTS])
    store = QdrantVectorStore.from_documents(
        chunks, embeddings, path=str(tmp_path), collection_name="compact", force_recreate=True,
        collection_create_options={"quantization_config": QUANTIZATION[form],
                                   "vectors_config": models.VectorParams(size=DIMS, distance=models.Distance.COSINE,
                                                                         on_disk=True)})
    hits = store.similarity_search_with_score(QUERY, k=3, search_params=RESCORE)
    store.client.close()
    ids, stored = _stored(tmp_path, "compact")
    found = [stored[ids.index(d.metadata["_id"])] for d, _ in hits]
    late = _late_vectors(embeddings.core, TEXTS)
    np.testing.assert_allclose(np.sort(stored, axis=0), np.sort(late, axis=0), atol=1e-6)
    assert sorted(map(bytes, binary_codes(stored))) == sorted(map(bytes, binary_codes(late)))
    _expect_float_ranking(embeddings.core, stored, found)
    with pytest.raises(QdrantVectorStoreError, match=r"with 16 dimensions\. Selected embeddings are 32-dimensional"):
        QdrantVectorStore.from_existing_collection(
            embedding=JinaV3Embeddings(model=str(tiny_checkpoint), device="cpu"), collection_name="compact",
            path=str(tmp_path), validate_embeddings=True)


@pytest.mark.parametrize("form", sorted(QUANTIZATION))
def test_llama_index_qdrant(tmp_path, tiny_checkpoint, form):
    pytest.importorskip("llama_index.vector_stores.qdrant")
    pytest.importorskip("llama_index.node_parser.jinav3")
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import Document, TextNode
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    from llama_index.embeddings.jinav3 import JinaV3Embedding
    from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

    model = JinaV3Embedding(model_name=str(tiny_checkpoint), device="cpu", dimensions=DIMS)
    nodes = JinaV3LateChunkingNodeParser(embed_model=model, chunker="sentences").get_nodes_from_documents(
        [Document(text=t) for t in TEXTS])
    client = qdrant_client.QdrantClient(path=str(tmp_path))
    vector_store = QdrantVectorStore(client=client, collection_name="compact", quantization_config=QUANTIZATION[form])
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=vector_store),
                             embed_model=model)
    hits = index.as_retriever(similarity_top_k=3, vector_store_kwargs={"search_params": RESCORE}).retrieve(QUERY)
    wider = JinaV3Embedding(model_name=str(tiny_checkpoint), device="cpu")  # the full 32 dimensions
    with pytest.raises(ValueError, match="expected dim: 16, got 32"):  # Qdrant's own check, naming both widths
        vector_store.add([TextNode(text="Kyoto", embedding=wider.get_text_embedding("Kyoto"))])
    client.close()
    ids, stored = _stored(tmp_path, "compact")
    late = _late_vectors(model.core, TEXTS)
    np.testing.assert_allclose(np.sort(stored, axis=0), np.sort(late, axis=0), atol=1e-6)
    assert sorted(map(bytes, binary_codes(stored))) == sorted(map(bytes, binary_codes(late)))
    _expect_float_ranking(model.core, stored, [stored[ids.index(h.node.node_id)] for h in hits])


@pytest.mark.parametrize("form", sorted(QUANTIZATION))
def test_haystack_qdrant(tmp_path, tiny_checkpoint, form):
    pytest.importorskip("haystack_integrations.document_stores.qdrant")
    pytest.importorskip("haystack_integrations.components.preprocessors.jinav3")
    from haystack import Document
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    from haystack_integrations.components.embedders.jinav3 import JinaV3TextEmbedder
    from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter

    tiny = {"model": str(tiny_checkpoint), "backend_options": {"device": "cpu"}, "dimensions": DIMS}
    splitter = JinaV3LateChunkingSplitter(**tiny, progress_bar=False)
    chunks = splitter.run(documents=[Document(content=t) for t in TEXTS])["documents"]
    # quantization_config is a dict of Qdrant's REST fields; the retriever sends no search params, so a server
    # searches with its defaults (rescore on, no oversampling): query store._client beside it for oversampling.
    quantization = QUANTIZATION[form].model_dump(exclude_none=True)
    store = QdrantDocumentStore(path=str(tmp_path), index="compact", embedding_dim=DIMS, on_disk=True,
                                recreate_index=True, quantization_config=quantization)
    store.write_documents(chunks)
    query = JinaV3TextEmbedder(**tiny).run(text=QUERY)["embedding"]
    hits = QdrantEmbeddingRetriever(store, top_k=3, return_embedding=True).run(query_embedding=query)["documents"]
    store._client.close()
    _, stored = _stored(tmp_path, "compact")
    late = _late_vectors(splitter.embedder, TEXTS)
    np.testing.assert_allclose(np.sort(stored, axis=0), np.sort(late, axis=0), atol=1e-6)
    assert sorted(map(bytes, binary_codes(stored))) == sorted(map(bytes, binary_codes(late)))
    _expect_float_ranking(splitter.embedder, stored, [np.array(h.embedding) for h in hits])
    reopened = QdrantDocumentStore(path=str(tmp_path), index="compact", embedding_dim=2 * DIMS)
    with pytest.raises(ValueError, match="configured with a vector size '16'"):  # names the stored width only
        reopened.count_documents()
