"""``embedding_type="binary"`` through LangChain: a store gets the sign bits as ±1 floats of the full width, never
packed bytes read as floats, so the store's own cosine ranks exactly as Hamming distance over the packed bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

from ..conftest import binary_scores
from .conftest import DIMS

#: Each example embeds through a framework (seconds on a loaded machine): a failure is reported unshrunk.
SLOW_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
WORDS = ["Berlin", "wall", "river", "old", "city", "is", "big", "Kyoto", "temple", "the", "a", "tower", "green"]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)


@pytest.fixture(scope="module", params=["binary", "ubinary"])
def binary(request, tiny_model) -> JinaV3Embeddings:
    return JinaV3Embeddings(model=tiny_model, device="cpu", dimensions=DIMS, embedding_type=request.param)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=SLOW_PHASES)
@given(corpus=st.lists(texts, min_size=1, max_size=8), query=texts)
def test_the_store_ranks_by_hamming_distance(binary, corpus, query):
    store = InMemoryVectorStore(binary)
    ids = store.add_texts(corpus)
    vectors = np.array([store.store[i]["vector"] for i in ids])
    assert vectors.shape == (len(corpus), DIMS) and set(np.unique(vectors)) <= {-1.0, 1.0}
    hits = store.similarity_search_with_score(query, k=len(corpus))
    expected = dict(zip(ids, binary_scores(binary.core, query, corpus, DIMS), strict=True))
    assert {doc.id: pytest.approx(score, abs=1e-6) for doc, score in hits} == expected
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)


def test_late_chunks_carry_the_signs_of_their_late_chunked_vectors(binary, tiny_embedder):
    text = "Berlin is big. It has a famous wall. The wall fell. Kyoto is old."
    chunks, vectors = JinaV3LateChunkingSplitter(binary).create_documents_with_embeddings([text])
    spans = [(text.index(c.page_content), text.index(c.page_content) + len(c.page_content)) for c in chunks]
    floats = tiny_embedder.late_chunk(text, spans=spans, task="retrieval.passage", dimensions=DIMS)
    assert vectors == [np.where(c.embedding > 0, 1.0, -1.0).tolist() for c in floats]
    store = InMemoryVectorStore(binary)
    ids = store.add_documents(chunks)
    assert [store.store[i]["vector"] for i in ids] == vectors


def test_an_encoding_that_is_no_list_of_floats_is_refused(tiny_model):
    with pytest.raises(ValidationError, match="embedding_type"):
        JinaV3Embeddings(model=tiny_model, embedding_type="base64")
