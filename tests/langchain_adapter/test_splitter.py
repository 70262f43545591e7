"""JinaV3LateChunkingSplitter: LangChain splitter behaviour (metadata, start_index, any boundary source) and
late-chunked vectors equal to the core's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_text_splitters import RecursiveCharacterTextSplitter

from jinav3 import SEAL_KEY, InvalidInputError
from jinav3.testing import same_vectors
from langchain_jinav3 import JinaV3LateChunkingSplitter

from .conftest import DIMS, DOC_A, DOC_B


def core_vectors(tiny_embedder, documents, chunks):
    """The core's late-chunked vectors for ``chunks`` (Documents with start_index) of ``documents``."""
    spans = [
        [(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content))
         for c in chunks if c.metadata["source"] == d.metadata["source"]]
        for d in documents
    ]
    found = tiny_embedder.late_chunk_many([d.page_content for d in documents], spans=spans,
                                          task="retrieval.passage", dimensions=DIMS)
    return np.array([c.embedding for per_doc in found for c in per_doc])


def test_chunks_carry_start_index_and_their_documents_metadata(splitter, documents):
    chunks = splitter.split_documents(documents)
    assert [c.page_content for c in chunks[:3]] == [
        "Berlin is the capital of Germany.", "It has a famous wall.", "More than three million people live there."
    ]
    for chunk in chunks:
        source = DOC_A if chunk.metadata["source"] == "a.txt" else DOC_B
        start = chunk.metadata["start_index"]
        assert source[start:start + len(chunk.page_content)] == chunk.page_content
    assert {c.metadata.get("city") for c in chunks if c.metadata["source"] == "a.txt"} == {"Berlin"}
    assert len(chunks) == 7
    chunks[0].metadata["city"] = "changed"
    assert documents[0].metadata["city"] == "Berlin"  # each chunk has its own copy


def test_vectors_are_the_cores_late_chunked_ones(splitter, documents, tiny_embedder, embeddings):
    chunks, vectors = splitter.split_documents_with_embeddings(documents)
    assert len(vectors) == len(chunks) and all(type(v[0]) is float and len(v) == DIMS for v in vectors)
    np.testing.assert_allclose(vectors, core_vectors(tiny_embedder, documents, chunks), atol=1e-6)
    wall = [i for i, c in enumerate(chunks) if c.page_content == "It has a famous wall."]
    assert len(wall) == 2 and not np.allclose(vectors[wall[0]], vectors[wall[1]], atol=1e-3)  # own context
    plain = embeddings.embed_documents(["It has a famous wall."])[0]
    assert not np.allclose(vectors[wall[0]], plain, atol=1e-3)


def test_all_documents_go_to_the_core_in_one_late_chunking_call(splitter, documents, recorded):
    splitter.split_documents([*documents, Document(page_content="  \n ", metadata={"source": "empty.txt"})])
    assert recorded.calls == [("late_chunk", "retrieval.passage", 2)]


def test_any_langchain_splitter_gives_the_boundaries(embeddings, documents, tiny_embedder):
    boundaries = RecursiveCharacterTextSplitter(chunk_size=40, chunk_overlap=12)
    splitter = JinaV3LateChunkingSplitter(embeddings, boundaries, add_start_index=True)
    chunks, vectors = splitter.split_documents_with_embeddings(documents)
    expected = [t.strip() for d in documents for t in boundaries.split_text(d.page_content)]
    assert [c.page_content for c in chunks] == expected
    np.testing.assert_allclose(vectors, core_vectors(tiny_embedder, documents, chunks), atol=1e-6)


def test_core_chunkers_and_callables(embeddings):
    by_tokens = JinaV3LateChunkingSplitter(embeddings, "tokens", chunk_size=6, chunk_overlap=2)
    pieces = by_tokens.split_text(DOC_B)
    assert len(pieces) > 3 and all(piece in DOC_B for piece in pieces)
    by_paragraph = JinaV3LateChunkingSplitter(embeddings, "paragraphs")
    assert len(by_paragraph.split_text(DOC_A)) == 2
    halves = JinaV3LateChunkingSplitter(embeddings, lambda text: [(0, 10), (10, len(text))])
    assert halves.split_text(DOC_B) == [DOC_B[:10], DOC_B[10:]]


def test_transform_documents_chunks_carry_their_vectors(splitter, documents, embeddings):
    chunks, vectors = splitter.split_documents_with_embeddings(documents)
    assert splitter.transform_documents(documents) == chunks
    np.testing.assert_allclose(embeddings.embed_documents([c.page_content for c in chunks]), vectors, atol=1e-6)


async def test_async_transform_gives_the_same_vectors(splitter, documents, embeddings):
    chunks, vectors = splitter.split_documents_with_embeddings(documents)
    async_chunks = await splitter.atransform_documents(documents)
    assert async_chunks == chunks
    np.testing.assert_allclose(await embeddings.aembed_documents([c.page_content for c in async_chunks]), vectors,
                               atol=1e-6)
    _, async_vectors = await splitter.asplit_documents_with_embeddings(documents)
    np.testing.assert_allclose(async_vectors, vectors, atol=1e-6)


def test_start_index_is_off_by_default_as_in_langchain(embeddings):
    chunks = JinaV3LateChunkingSplitter(embeddings).create_documents([DOC_B], [{"k": 1}])
    assert all(c.metadata.keys() == {"k", SEAL_KEY} and c.metadata["k"] == 1 for c in chunks)


def test_bad_input_is_named(splitter, embeddings):
    with pytest.raises(InvalidInputError, match="must be a JinaV3Embeddings"):
        JinaV3LateChunkingSplitter(DeterministicFakeEmbedding(size=8))
    with pytest.raises(InvalidInputError, match="another JinaV3LateChunkingSplitter"):
        JinaV3LateChunkingSplitter(embeddings, splitter)
    with pytest.raises(InvalidInputError, match="unknown chunker 'words'"):
        JinaV3LateChunkingSplitter(embeddings, "words").split_text(DOC_B)
    with pytest.raises(InvalidInputError, match="got 1 metadata dicts for 2 texts"):
        splitter.create_documents([DOC_A, DOC_B], [{}])
    with pytest.raises(InvalidInputError, match="got one string"):
        splitter.create_documents(DOC_A)
    with pytest.raises(InvalidInputError, match=r"documents\[0\] must be a langchain Document, got str"):
        splitter.split_documents_with_embeddings([DOC_A])
    with pytest.raises(InvalidInputError, match=r"documents\[1\] must be a langchain Document, got dict"):
        splitter.split_documents([Document(page_content=DOC_A), {"page_content": DOC_B}])
    with pytest.raises(InvalidInputError, match="text must be a string"):
        splitter.split_text(None)
    with pytest.raises(InvalidInputError, match="does not occur in the document"):
        JinaV3LateChunkingSplitter(embeddings, lambda text: ["not in there"]).split_text(DOC_B)


REPEATED = ["Yes.", "Answer: see above.", "| 1 | 2 |", "ERROR disk full.", "Berlin has a wall."]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(REPEATED), min_size=2, max_size=40),
       joints=st.lists(st.sampled_from([" ", "\n", "\n\n", "  "]), min_size=40, max_size=40),
       size=st.integers(10, 80), overlap_share=st.sampled_from([0.0, 0.0, 0.2, 0.5]))
def test_repeated_text_is_late_chunked_where_langchain_places_each_chunk(embeddings, tiny_embedder, pieces, joints,
                                                                        size, overlap_share):
    """Text that repeats itself: every chunk is pooled over the place LangChain itself gives it (its own
    ``start_index``), with or without overlap, never over an earlier copy of the same text."""
    text = "".join(p + j for p, j in zip(pieces, joints, strict=False)).strip()
    overlap = int(size * overlap_share)
    own = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, add_start_index=True)
    truth = [d for d in own.create_documents([text]) if d.page_content.strip()]
    splitter = JinaV3LateChunkingSplitter(embeddings, RecursiveCharacterTextSplitter(chunk_size=size,
                                                                                     chunk_overlap=overlap),
                                          add_start_index=True)
    chunks, vectors = splitter.split_documents_with_embeddings([Document(page_content=text, metadata={})])
    assert [(c.metadata["start_index"], c.page_content) for c in chunks] == \
        [(d.metadata["start_index"], d.page_content) for d in truth]
    spans = [(d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content)) for d in truth]
    expected = tiny_embedder.late_chunk(text, spans=spans, task="retrieval.passage", dimensions=DIMS)
    assert same_vectors(vectors, [c.embedding for c in expected])


def test_language_goes_to_the_cores_sentence_chunker(embeddings):
    text = "Am 3. Oktober kam sie. Im 2. Stock wohnt er."
    assert JinaV3LateChunkingSplitter(embeddings, language="de").split_text(text) == [
        "Am 3. Oktober kam sie.", "Im 2. Stock wohnt er."]
    assert len(JinaV3LateChunkingSplitter(embeddings, language="en").split_text(text)) == 4
    with pytest.raises(InvalidInputError, match="ISO 639"):
        JinaV3LateChunkingSplitter(embeddings, language="German")
