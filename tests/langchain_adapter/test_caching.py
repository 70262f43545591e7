"""``CacheBackedEmbeddings`` in front of ``JinaV3Embeddings``: with ``cache_keys`` every answer is the right vector
(a chunk's own contextual one, a plain one for plain text, a query one for queries) whatever was cached before, in
memory and on disk, sync and async; text-keyed caches and shared query/document stores are refused before anything
is cached."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.stores import InMemoryByteStore
from langchain_core.vectorstores import InMemoryVectorStore

from jinav3 import InvalidInputError
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter, cache_keys

from .conftest import DIMS

cache = pytest.importorskip("langchain_classic.embeddings.cache")
storage = pytest.importorskip("langchain_classic.storage")

# Sentences that repeat across documents and double as plain texts and queries.
SENTENCES = ["Berlin is big.", "It has a famous wall.", "Kyoto is old.", "It has a famous wall.", "Yes."]


@pytest.fixture
def fp32(tiny_model: str) -> JinaV3Embeddings:
    return JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)


def test_a_text_keyed_cache_is_refused_before_anything_is_cached(fp32, splitter, documents):
    store = InMemoryByteStore()
    cached = cache.CacheBackedEmbeddings.from_bytes_store(fp32, store, namespace="jina", key_encoder="sha256")
    with pytest.raises(InvalidInputError, match=r"CacheBackedEmbeddings keys its vectors by text alone.*cache_keys"):
        cached.embed_documents(["It has a famous wall."])
    chunks = JinaV3LateChunkingSplitter(fp32).split_documents(documents)
    with pytest.raises(InvalidInputError, match="CacheBackedEmbeddings keys its vectors by text alone"):
        InMemoryVectorStore(cached).add_documents(chunks)
    with pytest.raises(InvalidInputError, match="CacheBackedEmbeddings keys its vectors by text alone"):
        asyncio.run(cached.aembed_documents(["It has a famous wall."]))
    assert list(store.yield_keys()) == []


def test_query_and_document_vectors_in_one_store_are_refused(fp32):
    store = InMemoryByteStore()
    shared = cache.CacheBackedEmbeddings.from_bytes_store(fp32, store, key_encoder=cache_keys(fp32),
                                                          query_embedding_cache=True)
    with pytest.raises(InvalidInputError, match="pass a separate ByteStore as query_embedding_cache"):
        shared.embed_query("Where is the wall?")
    with pytest.raises(InvalidInputError, match="one store"):
        asyncio.run(shared.aembed_documents(["Where is the wall?"]))
    same = cache.CacheBackedEmbeddings.from_bytes_store(fp32, store, key_encoder=cache_keys(fp32),
                                                        query_embedding_cache=store)
    with pytest.raises(InvalidInputError, match="one store"):
        same.embed_query("Where is the wall?")
    assert list(store.yield_keys()) == []


def test_keys_of_another_vector_space_are_refused(fp32, tiny_model):
    wider = JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32")  # all 32 dimensions
    cached = cache.CacheBackedEmbeddings.from_bytes_store(fp32, InMemoryByteStore(), key_encoder=cache_keys(wider))
    with pytest.raises(InvalidInputError, match="keys its vectors by text alone"):
        cached.embed_documents(["Yes."])


operations = st.lists(
    st.one_of(
        st.tuples(st.just("plain"), st.sampled_from(SENTENCES)),
        st.tuples(st.just("query"), st.sampled_from(SENTENCES)),
        st.tuples(st.just("chunks"), st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=5)),
    ),
    min_size=2, max_size=6,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, on_disk=st.booleans(), asynchronous=st.booleans())
def test_every_answer_is_the_right_vector_whatever_was_cached_before(fp32, tiny_fp32, tmp_path, ops, on_disk,
                                                                     asynchronous):
    folder = tmp_path / uuid.uuid4().hex
    documents_store = storage.LocalFileStore(folder / "documents") if on_disk else InMemoryByteStore()
    queries_store = storage.LocalFileStore(folder / "queries") if on_disk else InMemoryByteStore()
    cached = cache.CacheBackedEmbeddings.from_bytes_store(fp32, documents_store, key_encoder=cache_keys(fp32),
                                                          query_embedding_cache=queries_store)
    splitter = JinaV3LateChunkingSplitter(fp32, add_start_index=True)
    keys: set[tuple[str, ...]] = set()

    async def run(op: tuple) -> None:
        kind, value = op
        if kind == "plain":
            got = await cached.aembed_documents([value]) if asynchronous else cached.embed_documents([value])
            expected = tiny_fp32.embed([value], "retrieval.passage", DIMS)
            keys.add(("plain", value))
        elif kind == "query":
            got = [await cached.aembed_query(value) if asynchronous else cached.embed_query(value)]
            expected = tiny_fp32.embed([value], "retrieval.query", DIMS)
        else:
            text = " ".join(value)
            chunks = splitter.split_documents([Document(page_content=text)])
            store = InMemoryVectorStore(cached)  # the store's own add path, through the cache
            ids = await store.aadd_documents(chunks) if asynchronous else store.add_documents(chunks)
            got = [store.store[i]["vector"] for i in ids]
            spans = [(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content)) for c in chunks]
            expected = [c.embedding for c in tiny_fp32.late_chunk(text, spans=spans, task="retrieval.passage",
                                                                 dimensions=DIMS)]
            keys.update(("late", text, str(start)) for start, _ in spans)
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=str(op))

    for op in ops:
        asyncio.run(run(op))
    # One cached vector per plain text and per chunk of each distinct document text: hits were served from it.
    assert len(list(documents_store.yield_keys())) == len(keys)
