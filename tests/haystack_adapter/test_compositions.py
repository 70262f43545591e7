"""Issue 35's Haystack compositions as named regression tests: each is exact, or refused before anything is
written (a warning is not a refusal)."""

from __future__ import annotations

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.preprocessors import DocumentCleaner, DocumentPreprocessor, DocumentSplitter
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder
from haystack_integrations.components.embedders.jinav3._seals import LEGACY_KEY
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from haystack_integrations.components.writers.jinav3 import JinaV3DocumentWriter
from jinav3 import SEAL_KEY, BrokenSealError, InvalidInputError, LateChunkingRequiredError, Seal
from jinav3.late_chunking.seal import fingerprint

from .texts import BERLIN, KYOTO

DIMS = 16
# Chunk edges with spaces and blank lines, as a converter's text has them: a cleaner after the splitter strips them.
SPACED = "Berlin is the capital.  It hosts universities.\n\nThe wall fell in 1989.  Many tourists visit.\n"


@pytest.fixture
def fp32(tiny):
    return {**tiny, "backend_options": {"device": "cpu", "dtype": "float32"}, "dimensions": DIMS,
            "progress_bar": False}


def files() -> list[Document]:
    return [Document(content=SPACED, meta={"file_path": "berlin.txt"}),
            Document(content=KYOTO, meta={"file_path": "kyoto.txt"})]


def assert_exact(tiny_fp32, stored: list[Document], sources: list[Document]) -> None:
    """Every stored vector is the fp32 late chunking of its sealed span in its own document, computed by an
    independent core with the document's stored spans (the first and last chunk also pool the special tokens)."""
    by_file = {doc.meta["file_path"]: doc.content for doc in sources}
    assert stored
    for name, text in by_file.items():
        own = [doc for doc in stored if doc.meta["file_path"] == name and doc.embedding is not None]
        seals = [Seal.decode(doc.meta[SEAL_KEY]) for doc in own]
        for doc, seal in zip(own, seals, strict=True):
            assert seal.document == fingerprint(text) and text[seal.start : seal.end] == doc.content
        if own:
            truth = tiny_fp32.late_chunk(text, spans=[(seal.start, seal.end) for seal in seals],
                                         task="retrieval.passage", dimensions=DIMS)
            np.testing.assert_allclose([doc.embedding for doc in own], [c.embedding for c in truth], atol=1e-5)


def late_pipeline(fp32, store, cleaner) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("splitter", DocumentSplitter(split_by="period", split_length=1))
    pipeline.add_component("cleaner", cleaner)
    pipeline.add_component("embedder", JinaV3DocumentEmbedder(**fp32, late_chunking=True))
    pipeline.add_component("writer", JinaV3DocumentWriter(store, source_key="file_path"))
    pipeline.connect("splitter.documents", "cleaner.documents")
    pipeline.connect("cleaner.documents", "embedder.documents")
    pipeline.connect("embedder.documents", "writer.documents")
    return pipeline


@pytest.mark.parametrize("cleaner", [DocumentCleaner, lambda: DocumentPreprocessor(split_by="word", split_length=5)])
def test_issue_35_splitter_cleaner_late_embedder_is_refused_without_the_sources(fp32, cleaner):
    """The issue's case 5: the cleaner strips chunk edges, so the source cannot be rebuilt; it used to be
    late-chunked piece by piece (0/13 exact) with a warning only. Now refused, and nothing is written."""
    store = InMemoryDocumentStore()
    with pytest.raises(Exception, match="source_documents") as refused:
        late_pipeline(fp32, store, cleaner()).run({"splitter": {"documents": files()}})
    assert "DocumentCleaner" in str(refused.value)
    assert store.count_documents() == 0


def test_issue_35_with_the_sources_in_the_run_the_cleaned_chunks_are_exact(fp32, tiny_fp32):
    """The composition that works: the unsplit documents go to the embedder too (here as a pipeline input; from a
    converter, pipeline.connect("converter.documents", "embedder.source_documents")); each cleaned chunk is found
    in its real source and late-chunked there."""
    store = InMemoryDocumentStore()
    pipeline = late_pipeline(fp32, store, DocumentCleaner())
    docs = files()
    pipeline.run({"splitter": {"documents": docs}, "embedder": {"source_documents": docs}})
    stored = store.filter_documents()
    assert len(stored) >= 6 and any(doc.content.endswith("universities.") for doc in stored)  # edges stripped
    assert_exact(tiny_fp32, stored, docs)


def test_issue_35_cleaning_before_splitting_is_exact(fp32, tiny_fp32):
    store = InMemoryDocumentStore()
    pipeline = Pipeline()
    pipeline.add_component("cleaner", DocumentCleaner())
    pipeline.add_component("splitter", DocumentSplitter(split_by="word", split_length=4, split_overlap=1))
    pipeline.add_component("embedder", JinaV3DocumentEmbedder(**fp32, late_chunking=True))
    pipeline.add_component("writer", JinaV3DocumentWriter(store, source_key="file_path"))
    pipeline.connect("cleaner.documents", "splitter.documents")
    pipeline.connect("splitter.documents", "embedder.documents")
    pipeline.connect("embedder.documents", "writer.documents")
    cleaned = pipeline.run({"cleaner": {"documents": files()}}, include_outputs_from={"cleaner"})["cleaner"]
    assert_exact(tiny_fp32, store.filter_documents(), cleaned["documents"])


def test_a_cleaner_after_our_splitter_is_refused_by_the_embedder_and_the_writer(fp32):
    splitter = JinaV3LateChunkingSplitter(**fp32, document_splitter=DocumentSplitter(split_by="word", split_length=4))
    chunks = DocumentCleaner().run(documents=splitter.run(documents=files())["documents"])["documents"]
    with pytest.raises(BrokenSealError, match="its text was changed") as refused:
        JinaV3DocumentEmbedder(**fp32).run(documents=chunks)
    assert "DocumentCleaner" in str(refused.value)
    store = InMemoryDocumentStore()
    with pytest.raises(BrokenSealError, match="its text was changed"):
        JinaV3DocumentWriter(store, source_key="file_path").run(documents=chunks)
    assert store.count_documents() == 0


def test_a_splitter_after_the_late_chunking_step_is_refused(fp32):
    """DocumentSplitter copies the seal but not the vector onto each piece; JinaV3LateChunkingSplitter refuses
    pieces of a split document (it would late-chunk each piece without its document)."""
    late = JinaV3LateChunkingSplitter(**fp32, chunker="sentences").run(documents=files())["documents"]
    pieces = DocumentSplitter(split_by="word", split_length=3).run(documents=late)["documents"]
    with pytest.raises(BrokenSealError, match="no vector"):
        JinaV3DocumentWriter(InMemoryDocumentStore(), source_key="file_path").run(documents=pieces)
    with pytest.raises(BrokenSealError):
        JinaV3DocumentEmbedder(**fp32).run(documents=pieces)
    split = DocumentSplitter(split_by="word", split_length=3).run(documents=files())["documents"]
    with pytest.raises(InvalidInputError, match="already a chunk"):
        JinaV3LateChunkingSplitter(**fp32).run(documents=split)


def test_plain_embedder_overwrite_drops_the_seal_and_strict_mode_refuses_plain_vectors(fp32):
    late = JinaV3LateChunkingSplitter(**fp32).run(documents=files())["documents"]
    kept = JinaV3DocumentEmbedder(**fp32, strict_late_chunking=True).run(documents=late)["documents"]
    assert [d.embedding for d in kept] == [d.embedding for d in late]  # the seals hold: passed through
    plain = JinaV3DocumentEmbedder(**fp32, overwrite=True).run(documents=late)["documents"]
    assert not any(SEAL_KEY in d.meta for d in plain)
    with pytest.raises(LateChunkingRequiredError, match="overwrite=True"):
        JinaV3DocumentEmbedder(**fp32, overwrite=True, strict_late_chunking=True).run(documents=late)
    with pytest.raises(LateChunkingRequiredError, match="no late-chunking seal"):
        JinaV3DocumentEmbedder(**fp32, strict_late_chunking=True).run(documents=files())
    query = JinaV3DocumentEmbedder(**fp32, strict_late_chunking=True, task="retrieval.query")
    assert query.run(documents=files())["documents"][0].embedding is not None  # queries are never affected


def test_old_markers_and_mixed_versions_are_refused(fp32):
    old = Document(content="Berlin", embedding=[0.1] * DIMS, meta={LEGACY_KEY: "x@16", "file_path": "a"})
    with pytest.raises(BrokenSealError, match="re-run the late-chunking step"):
        JinaV3DocumentEmbedder(**fp32).run(documents=[old])
    with pytest.raises(BrokenSealError, match="re-run the late-chunking step"):
        JinaV3DocumentWriter(InMemoryDocumentStore(), source_key="file_path").run(documents=[old])
    splitter = JinaV3LateChunkingSplitter(**fp32)
    first = splitter.run(documents=[Document(content=BERLIN, meta={"file_path": "a"})])["documents"]
    second = splitter.run(documents=[Document(content=BERLIN + " Edited.", meta={"file_path": "a"})])["documents"]
    store = InMemoryDocumentStore()
    with pytest.raises(BrokenSealError, match="different versions"):
        JinaV3DocumentWriter(store, source_key="file_path").run(documents=[first[0], second[1]])
    narrow = JinaV3LateChunkingSplitter(**{**fp32, "dimensions": 8}).run(documents=files()[1:])["documents"]
    with pytest.raises(BrokenSealError, match="mix late-chunked vectors of spaces"):
        JinaV3DocumentWriter(store, source_key="file_path").run(documents=[*first, *narrow])
    assert store.count_documents() == 0


def test_query_time_re_embedding_uses_the_stored_vector_or_raises(fp32):
    store = InMemoryDocumentStore()
    late = JinaV3LateChunkingSplitter(**fp32).run(documents=files())["documents"]
    DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE).run(documents=late)
    again = JinaV3DocumentEmbedder(**fp32).run(documents=store.filter_documents())["documents"]
    assert {d.id: d.embedding for d in again} == {d.id: d.embedding for d in late}
    retrieved = [Document(id=d.id, content=d.content, meta=d.meta) for d in late]  # return_embedding=False
    with pytest.raises(BrokenSealError, match="no vector"):
        JinaV3DocumentEmbedder(**fp32).run(documents=retrieved)


def test_equal_texts_in_different_documents_keep_distinct_ids(fp32):
    twins = [Document(content="Same sentence. " + BERLIN, meta={"file_path": "a"}),
             Document(content="Same sentence. " + KYOTO, meta={"file_path": "b"})]
    store = InMemoryDocumentStore()
    chunks = JinaV3LateChunkingSplitter(**fp32).run(documents=twins)["documents"]
    JinaV3DocumentWriter(store, source_key="file_path").run(documents=chunks)
    same = [d for d in store.filter_documents() if d.content.startswith("Same sentence.")]
    assert len(same) == 2 and same[0].id != same[1].id and same[0].embedding != same[1].embedding
