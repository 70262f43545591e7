"""How late-chunked vectors reach LangChain stores: each chunk's text carries its own vector, so unrelated callers
never receive one, nothing waits in memory, a second store (or another process) gets the same vectors, duplicate
sentences never swap, a lost vector is warned about, and the inherited TextSplitter keywords work."""

from __future__ import annotations

import gc
import pickle
import random
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from jinav3 import InvalidInputError
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter, handoff

from .conftest import DIMS

WALL = "It has a famous wall."
SENTENCES = ["Berlin is big.", WALL, "Kyoto is old.", "It has temples.", WALL, "Paris has a tower.", "It is nice."]


def stored(store: InMemoryVectorStore, ids: list[str]) -> np.ndarray:
    return np.array([store.store[i]["vector"] for i in ids])


def test_an_unrelated_caller_with_equal_text_never_receives_a_contextual_vector(splitter, documents, embeddings,
                                                                                tiny_embedder):
    chunks, expected = splitter.split_documents_with_embeddings(documents)
    wall = next(i for i, c in enumerate(chunks) if c.page_content == WALL)
    with pytest.warns(UserWarning, match="without their late-chunked vector"):
        unrelated = embeddings.embed_documents([WALL])[0]  # a plain string equal to a live chunk's text
    plain = tiny_embedder.embed([WALL], "retrieval.passage", DIMS)[0]
    np.testing.assert_allclose(unrelated, plain, atol=1e-6)
    store = InMemoryVectorStore(embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the chunks themselves carry their vectors: no warning
        ids = store.add_documents(chunks)
    np.testing.assert_allclose(stored(store, ids)[wall], expected[wall], atol=1e-6)


def test_nothing_waits_in_memory_after_the_chunks_are_gone(embeddings, documents):
    splitter = JinaV3LateChunkingSplitter(embeddings)
    gc.collect()
    before = len(handoff._LIVE)
    for _ in range(50):
        splitter.split_documents(documents)  # split, never stored
    gc.collect()
    assert len(handoff._LIVE) == before  # the registry holds no chunk alive: it empties with them
    assert not hasattr(embeddings, "pending_late_chunks")


def test_a_second_store_and_another_process_get_the_same_vectors(splitter, documents, embeddings):
    chunks, expected = splitter.split_documents_with_embeddings(documents)
    first, second = InMemoryVectorStore(embeddings), InMemoryVectorStore(embeddings)
    np.testing.assert_allclose(stored(first, first.add_documents(chunks)), expected, atol=1e-6)
    np.testing.assert_allclose(stored(second, second.add_documents(chunks)), expected, atol=1e-6)
    shipped = pickle.loads(pickle.dumps(chunks))  # as multiprocessing sends them
    third = InMemoryVectorStore(JinaV3Embeddings(**embeddings.model_dump(exclude={"api_key"})))
    np.testing.assert_allclose(stored(third, third.add_documents(shipped)), expected, atol=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=6), min_size=1, max_size=4),
       seed=st.integers(0, 2**16))
def test_duplicate_sentences_in_any_order_keep_their_own_vectors(embeddings, picks, seed):
    documents = [Document(page_content=" ".join(p), metadata={"doc": i}) for i, p in enumerate(picks)]
    splitter = JinaV3LateChunkingSplitter(embeddings, add_start_index=True)
    chunks, expected = splitter.split_documents_with_embeddings(documents)
    order = list(range(len(chunks)))
    random.Random(seed).shuffle(order)
    store = InMemoryVectorStore(embeddings)
    ids = store.add_documents([chunks[i] for i in order])
    np.testing.assert_allclose(stored(store, ids), [expected[i] for i in order], atol=1e-6)


def test_a_plain_copy_of_a_chunk_warns_and_gets_a_plain_vector(splitter, documents, embeddings, tiny_embedder):
    chunks = splitter.split_documents(documents)
    copies = [Document(page_content=str(c.page_content), metadata=c.metadata) for c in chunks]
    store = InMemoryVectorStore(embeddings)
    with pytest.warns(UserWarning, match=f"{len(chunks)} texts equal chunks made by JinaV3LateChunkingSplitter"):
        ids = store.add_documents(copies)
    plain = tiny_embedder.embed([c.page_content for c in chunks], "retrieval.passage", DIMS)
    np.testing.assert_allclose(stored(store, ids), plain, atol=1e-6)


def test_chunks_of_another_vector_space_are_refused(splitter, documents, tiny_model):
    chunks = splitter.split_documents(documents)
    narrower = JinaV3Embeddings(model=tiny_model, device="cpu", dimensions=8)
    with pytest.raises(InvalidInputError, match=r"late-chunked in vector space .*@16"):
        InMemoryVectorStore(narrower).add_documents(chunks)


def test_from_huggingface_tokenizer_and_the_inherited_keywords(embeddings, minilm_dir, tiny_embedder):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    splitter = JinaV3LateChunkingSplitter.from_huggingface_tokenizer(
        tokenizer, embeddings=embeddings, chunk_size=12, chunk_overlap=0, add_start_index=True,
        strip_whitespace=True, keep_separator=True,
    )
    text = " ".join(SENTENCES * 3)
    chunks, vectors = splitter.create_documents_with_embeddings([text])
    assert len(chunks) > 3
    assert all(len(tokenizer.encode(c.page_content, add_special_tokens=False)) <= 12 for c in chunks)
    spans = [(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content)) for c in chunks]
    assert all(text[s:e] == c.page_content for (s, e), c in zip(spans, chunks, strict=True))
    expected = tiny_embedder.late_chunk(text, spans=spans, task="retrieval.passage", dimensions=DIMS)
    np.testing.assert_allclose(vectors, [c.embedding for c in expected], atol=1e-6)
    by_length = JinaV3LateChunkingSplitter(embeddings, "recursive", chunk_size=30, length_function=len)
    assert all(len(t) <= 30 for t in by_length.split_text(text))


def test_binary_output_and_the_jina_api_key_alias(tiny_model, tiny_embedder):
    binary = JinaV3Embeddings(model=tiny_model, device="cpu", embedding_type="ubinary")
    expected = tiny_embedder.embed(["Berlin"], "retrieval.passage", embedding_type="binary_float")[0]
    assert binary.embed_documents(["Berlin"])[0] == expected.tolist()  # the bits as ±1 floats (see test_binary)
    chunks, vectors = JinaV3LateChunkingSplitter(binary).create_documents_with_embeddings(["Berlin is big. It is."])
    store = InMemoryVectorStore(binary)
    assert stored(store, store.add_documents(chunks)).tolist() == vectors
    migrated = JinaV3Embeddings(backend="api", jina_api_key="jina_migrated")
    assert migrated.api_key.get_secret_value() == "jina_migrated"
