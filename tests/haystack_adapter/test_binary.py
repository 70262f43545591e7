"""``embedding_type="binary"`` in Haystack: ``Document.embedding`` gets the sign bits as ±1 floats of the full width,
never packed bytes read as floats, so a store's own cosine ranks exactly as Hamming distance over the packed bits."""

from __future__ import annotations

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from jinav3 import InvalidInputError

from ..conftest import binary_scores
from .texts import KYOTO

DIMS = 16
#: Each example embeds through a framework (seconds on a loaded machine): a failure is reported unshrunk.
SLOW_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
WORDS = ["Berlin", "wall", "river", "old", "city", "is", "big", "Kyoto", "temple", "the", "a", "tower", "green"]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=SLOW_PHASES)
@given(corpus=st.lists(texts, min_size=1, max_size=8, unique=True), query=texts)  # Haystack ids hash the content
def test_a_retrieval_pipeline_ranks_by_hamming_distance(tiny, corpus, query):
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    embedder = JinaV3DocumentEmbedder(**tiny, dimensions=DIMS, embedding_type="binary", progress_bar=False)
    documents = embedder.run(documents=[Document(content=text) for text in corpus])["documents"]
    assert all(len(d.embedding) == DIMS and set(d.embedding) <= {-1.0, 1.0} for d in documents)
    store.write_documents(documents)
    search = Pipeline()
    search.add_component("query", JinaV3TextEmbedder(**tiny, dimensions=DIMS, embedding_type="ubinary"))
    search.add_component("retriever", InMemoryEmbeddingRetriever(store, top_k=len(corpus), scale_score=False))
    search.connect("query.embedding", "retriever.query_embedding")
    hits = search.run({"query": {"text": query}})["retriever"]["documents"]
    expected = dict(zip([d.id for d in documents], binary_scores(embedder.embedder, query, corpus, DIMS), strict=True))
    assert {d.id: pytest.approx(d.score, abs=1e-6) for d in hits} == expected


def test_late_chunks_carry_the_signs_of_their_late_chunked_vectors(tiny):
    splitter = JinaV3LateChunkingSplitter(**tiny, dimensions=DIMS, embedding_type="binary", progress_bar=False)
    chunks = splitter.run(documents=[Document(content=KYOTO)])["documents"]
    spans = [(c.meta["split_idx_start"], c.meta["split_idx_start"] + len(c.content)) for c in chunks]
    floats = splitter.embedder.late_chunk(KYOTO, spans=spans, task="retrieval.passage", dimensions=DIMS)
    assert [c.embedding for c in chunks] == [np.where(f.embedding > 0, 1.0, -1.0).tolist() for f in floats]


def test_an_encoding_that_is_no_list_of_floats_is_refused():
    with pytest.raises(InvalidInputError, match=r"'base64' cannot be stored in Document\.embedding"):
        JinaV3TextEmbedder(embedding_type="base64")
