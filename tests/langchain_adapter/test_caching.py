"""``CacheBackedEmbeddings`` in front of ``JinaV3Embeddings``: with ``cache_keys`` every answer is the right vector
(a chunk's own contextual one, a plain one for plain text, a query one for queries) whatever was cached before, in
memory and on disk, sync and async. A text-keyed cache cannot be refused (a hit never reaches the embeddings): the
stored seal exposes its wrong vector afterwards."""

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

from jinav3 import BrokenSealError
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter, StoredVectors, cache_keys

from .conftest import DIMS

cache = pytest.importorskip("langchain_classic.embeddings.cache")
storage = pytest.importorskip("langchain_classic.storage")

# Sentences that repeat across documents and double as plain texts and queries.
SENTENCES = ["Berlin is big.", "It has a famous wall.", "Kyoto is old.", "It has a famous wall.", "Yes."]


@pytest.fixture
def fp32(tiny_model: str) -> JinaV3Embeddings:
    return JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)


def test_a_text_keyed_cache_hit_cannot_be_checked_but_the_stored_seal_exposes_it(fp32, tiny_model):
    """The documented limit: a cache hit never reaches the embeddings, and without a call-stack walk nothing tells
    them which cache called, so a text-keyed cache is not refused. Document B's "It has a famous wall." then gets
    document A's cached vector; the seal in the store's metadata catches it at the next check (StoredVectors here;
    index() and the store's strict embeddings check the carried vector, which a hit bypasses)."""
    strict = JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32", dimensions=DIMS,
                              strict_late_chunking=True)
    cached = cache.CacheBackedEmbeddings.from_bytes_store(strict, InMemoryByteStore(), key_encoder="sha256")
    splitter = JinaV3LateChunkingSplitter(fp32)
    store = InMemoryVectorStore(cached)
    first = splitter.split_documents([Document(page_content="Berlin is big. It has a famous wall.")])
    second = splitter.split_documents([Document(page_content="China is large. It has a famous wall.")])
    store.add_documents(first)
    store.add_documents(second)  # a later add: "It has a famous wall." is a hit
    stored = {d.id: store.store[d.id]["vector"] for d in first + second}
    wall_a, wall_b = first[1], second[1]
    np.testing.assert_array_equal(stored[wall_b.id], stored[wall_a.id])  # B got A's vector from the cache
    hits = [Document(id=d.id, page_content=str(d.page_content), metadata=d.metadata) for d in (wall_a, wall_b)]
    with pytest.raises(BrokenSealError, match=r"stored chunk .*its vector is not the late-chunked one"):
        StoredVectors(store).transform_documents(hits)
    # With cache_keys the same run is exact: each wall keyed by its own seal.
    keyed = cache.CacheBackedEmbeddings.from_bytes_store(strict, InMemoryByteStore(), key_encoder=cache_keys(strict))
    exact = InMemoryVectorStore(keyed)
    exact.add_documents(first + second)
    np.testing.assert_allclose(exact.store[wall_b.id]["vector"], wall_b.page_content.embedding, atol=1e-6)
    assert len(StoredVectors(exact).transform_documents(hits)) == 2


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
