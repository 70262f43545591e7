"""Late-chunked vectors reach vector stores: ``add_documents`` on the core InMemoryVectorStore (any store),
``from_embeddings`` on FAISS, over the local and the API backend, and a real retrieval round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from jinav3 import InputTooLongError
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

from .conftest import DIMS

WALL = "It has a famous wall."
CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"


def stored_vectors(store: InMemoryVectorStore, ids: list[str]) -> np.ndarray:
    return np.array([store.store[i]["vector"] for i in ids])


def test_add_documents_stores_the_late_chunked_vectors(splitter, documents, embeddings, recorded):
    expected_chunks, expected = splitter.split_documents_with_embeddings(documents)
    chunks = splitter.split_documents(documents)
    store = InMemoryVectorStore(embeddings)
    recorded.calls.clear()
    ids = store.add_documents(chunks)
    assert recorded.calls == []  # nothing was re-embedded
    np.testing.assert_allclose(stored_vectors(store, ids), expected, atol=1e-6)
    walls = [i for i, c in zip(ids, chunks, strict=True) if c.page_content == WALL]
    assert [store.store[i]["metadata"]["source"] for i in walls] == ["a.txt", "b.txt"]
    assert not np.allclose(store.store[walls[0]]["vector"], store.store[walls[1]]["vector"], atol=1e-3)
    again = store.add_documents(chunks[:1])  # the chunk still carries its vector: a second add stores it again
    np.testing.assert_allclose(store.store[again[0]]["vector"], expected[0], atol=1e-6)
    hits = store.similarity_search_by_vector(expected[4], k=1)
    assert hits[0].page_content == expected_chunks[4].page_content
    assert hits[0].metadata == expected_chunks[4].metadata
    found = store.similarity_search("Which wall is famous?", k=3)
    assert len(found) == 3 and all("start_index" in d.metadata and "source" in d.metadata for d in found)


async def test_aadd_documents_stores_the_late_chunked_vectors(splitter, documents, embeddings):
    _, expected = splitter.split_documents_with_embeddings(documents)
    chunks = await splitter.atransform_documents(documents)
    store = InMemoryVectorStore(embeddings)
    ids = await store.aadd_documents(list(chunks))
    np.testing.assert_allclose(stored_vectors(store, ids), expected, atol=1e-6)


def test_other_texts_in_the_same_call_are_embedded_normally(splitter, documents, embeddings, tiny_embedder):
    chunks, expected = splitter.split_documents_with_embeddings(documents)
    splitter.split_documents(documents)
    plain = Document(page_content="A plain note that no splitter produced.")
    store = InMemoryVectorStore(embeddings)
    ids = store.add_documents([plain, *chunks, plain])
    vectors = stored_vectors(store, ids)
    np.testing.assert_allclose(vectors[1:-1], expected, atol=1e-6)
    plain_vector = tiny_embedder.embed([plain.page_content], "retrieval.passage", DIMS)[0]
    np.testing.assert_allclose(vectors[[0, -1]], [plain_vector, plain_vector], atol=1e-6)


def test_a_failed_embedding_call_loses_nothing(tiny_model, documents):
    embeddings = JinaV3Embeddings(model=tiny_model, device="cpu", dimensions=DIMS, max_length=48)
    splitter = JinaV3LateChunkingSplitter(embeddings)
    _, expected = splitter.split_documents_with_embeddings(documents)  # long documents use macro windows
    chunks = splitter.split_documents(documents)
    with pytest.raises(InputTooLongError):
        embeddings.embed_documents([chunks[0].page_content, "word " * 100])
    store = InMemoryVectorStore(embeddings)
    np.testing.assert_allclose(stored_vectors(store, store.add_documents(chunks)), expected, atol=1e-6)


def test_api_backend_stores_the_cores_late_chunked_vectors(api_settings, documents, tiny_embedder):
    remote = JinaV3Embeddings(**api_settings, dimensions=DIMS)
    splitter = JinaV3LateChunkingSplitter(remote, add_start_index=True)
    chunks = splitter.split_documents(documents)
    store = InMemoryVectorStore(remote)
    vectors = stored_vectors(store, store.add_documents(chunks))
    spans = [[(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content))
              for c in chunks if c.metadata["source"] == d.metadata["source"]] for d in documents]
    texts = [d.page_content for d in documents]
    core = remote.core.late_chunk_many(texts, spans=spans, task="retrieval.passage", dimensions=DIMS)
    np.testing.assert_allclose(vectors, [c.embedding for per_doc in core for c in per_doc], atol=1e-6)
    # The API receives chunk texts, not the document, so the whitespace between chunks may differ from the
    # local run: the vectors agree closely, not exactly.
    local = tiny_embedder.late_chunk_many(texts, spans=spans, task="retrieval.passage", dimensions=DIMS)
    cosines = np.sum(vectors * np.array([c.embedding for per_doc in local for c in per_doc]), axis=1)
    assert cosines.min() > 0.99


def test_faiss_from_embeddings_keeps_the_late_chunked_vectors(splitter, documents, embeddings):
    faiss_store = pytest.importorskip("langchain_community.vectorstores.faiss", reason="langchain-community missing")
    chunks, vectors = splitter.split_documents_with_embeddings(documents)
    store = faiss_store.FAISS.from_embeddings(
        list(zip([c.page_content for c in chunks], vectors, strict=True)), embeddings,
        metadatas=[c.metadata for c in chunks],
    )
    np.testing.assert_allclose(store.index.reconstruct_n(0, len(chunks)), vectors, atol=1e-6)
    hit, _ = store.similarity_search_with_score_by_vector(vectors[2], k=1)[0]
    assert hit.page_content == chunks[2].page_content and hit.metadata == chunks[2].metadata
    assert len(store.similarity_search("Which wall is famous?", k=2)) == 2


@pytest.fixture(scope="module")
def corpus_store(minilm_dir) -> InMemoryVectorStore:
    """The example corpus, late-chunked by sentence with the small real MiniLM model, in an InMemoryVectorStore."""
    embeddings = JinaV3Embeddings(model=str(minilm_dir), device="cpu")
    documents = [Document(page_content=f.read_text(encoding="utf-8"), metadata={"source": f.name})
                 for f in sorted(CORPUS.glob("*.txt"))]
    store = InMemoryVectorStore(embeddings)
    store.add_documents(JinaV3LateChunkingSplitter(embeddings).split_documents(documents))
    return store


@pytest.mark.parametrize(
    ("query", "source", "words"),
    [
        ("Which city was divided by a wall?", "berlin_en.txt", "divided"),
        ("Which airport replaced Tegel?", "berlin_en.txt", "Tegel"),
        ("Wo steht die Elbphilharmonie?", "hamburg_de.txt", "Elbphilharmonie"),
    ],
)
def test_retrieval_round_trip_with_a_real_model(corpus_store, query, source, words):
    best = corpus_store.similarity_search(query, k=1)[0]
    assert best.metadata["source"] == source
    assert words in best.page_content
