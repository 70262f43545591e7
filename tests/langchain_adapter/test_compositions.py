"""Issue 35's LangChain compositions as named regression tests: LangChain's own retrievers, filters, splitters and
serialisers around late chunks, on InMemoryVectorStore, Qdrant local mode on disk and Chroma's persistent client.
Each either stores and uses the exact late-chunked vectors or is refused before anything is written."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.load import dumpd, load
from langchain_core.stores import InMemoryStore
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from jinav3 import SEAL_KEY, BrokenSealError, Embedder, LateChunkingRequiredError, Seal
from jinav3.late_chunking.seal import fingerprint
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter, StoredVectors, index

from .conftest import DIMS
from .stores import KINDS, Record, late_chunked_references, open_store

retrievers = pytest.importorskip("langchain_classic.retrievers")
compressors = pytest.importorskip("langchain_classic.retrievers.document_compressors")
transformers = pytest.importorskip("langchain_community.document_transformers")
pytest.importorskip("langchain_chroma")

WALL = "It has a famous wall."
SOURCES = [Document(page_content=f"Berlin is the capital of Germany. {WALL}", metadata={"source": "berlin"}),
           Document(page_content=f"China is a large country in Asia. {WALL}", metadata={"source": "china"})]
QUERY = "Which wall is famous?"


@pytest.fixture
def fp32(tiny_model: str) -> JinaV3Embeddings:
    return JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)


@pytest.fixture
def splitter(fp32: JinaV3Embeddings) -> JinaV3LateChunkingSplitter:
    return JinaV3LateChunkingSplitter(fp32)


@pytest.fixture
def strict(splitter: JinaV3LateChunkingSplitter) -> JinaV3Embeddings:
    return splitter.store_embeddings()


def assert_exact(embedder: Embedder, documents: list[str], records: dict[str, Record]) -> None:
    """Every stored vector is a fresh fp32 late chunking of its sealed span in its own document."""
    texts = {fingerprint(text): text for text in documents}
    references = late_chunked_references(embedder, texts, records, DIMS)
    assert references.keys() == records.keys()
    for key, (text, metadata, vector) in records.items():
        seal = Seal.decode(metadata[SEAL_KEY])
        assert texts[seal.document][seal.start:seal.end] == text
        np.testing.assert_allclose(vector, references[key], atol=1e-5, err_msg=text)


def test_store_embeddings_is_a_strict_copy_and_leaves_the_splitters_alone(splitter, fp32, strict):
    assert strict.strict_late_chunking and not fp32.strict_late_chunking
    assert strict.vector_space() == fp32.vector_space() and strict.core is fp32.core  # one loaded model
    with pytest.raises(LateChunkingRequiredError, match="1 of 1 texts"):
        strict.embed_documents([WALL])
    assert len(strict.embed_query(WALL)) == DIMS  # queries are never affected
    assert len(fp32.embed_documents(["A plain note."])[0]) == DIMS


@pytest.mark.parametrize("kind", KINDS)
def test_redundant_filter_compares_the_stored_vectors_and_keeps_both_walls(splitter, strict, tmp_path, kind):
    """ContextualCompressionRetriever + EmbeddingsRedundantFilter re-embedded retrieved chunks plainly, so the two
    documents' equal sentences looked identical and one was dropped. A strict store refuses that; with
    StoredVectors first, the filter compares the stored late-chunked vectors and keeps both."""
    opened = open_store(kind, strict, tmp_path, DIMS)
    try:
        opened.store.add_documents(splitter.split_documents(SOURCES))
        base = opened.store.as_retriever(search_kwargs={"k": 4})
        plain = transformers.EmbeddingsRedundantFilter(embeddings=strict, similarity_threshold=0.9999)
        alone = compressors.DocumentCompressorPipeline(transformers=[plain])
        refiltered = retrievers.ContextualCompressionRetriever(base_compressor=alone, base_retriever=base)
        with pytest.raises(LateChunkingRequiredError, match="StoredVectors"):
            refiltered.invoke(QUERY)
        pipeline = compressors.DocumentCompressorPipeline(transformers=[StoredVectors(opened.store), plain])
        retriever = retrievers.ContextualCompressionRetriever(base_compressor=pipeline, base_retriever=base)
        for found in (retriever.invoke(QUERY), asyncio.run(retriever.ainvoke(QUERY))):
            assert [d.page_content for d in found].count(WALL) == 2
            stored = opened.records()
            for document in found:
                key = str(document.id)
                np.testing.assert_allclose(document.state["embedded_doc"], stored[key][2], atol=1e-6)
    finally:
        opened.close()


def test_embeddings_filter_scores_the_query_against_the_stored_vectors(splitter, strict, tmp_path):
    opened = open_store("chroma", strict, tmp_path, DIMS)
    opened.store.add_documents(splitter.split_documents(SOURCES))
    scoring = compressors.EmbeddingsFilter(embeddings=strict, similarity_threshold=-1.0)
    pipeline = compressors.DocumentCompressorPipeline(transformers=[StoredVectors(opened.store), scoring])
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=pipeline, base_retriever=opened.store.as_retriever(search_kwargs={"k": 4}))
    found = retriever.invoke(QUERY)
    assert len(found) == 4
    query = np.asarray(strict.embed_query(QUERY))
    stored = opened.records()
    for document in found:
        vector = stored[document.id][2]
        expected = query @ vector / (np.linalg.norm(query) * np.linalg.norm(vector))
        assert document.state["query_similarity_score"] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(LateChunkingRequiredError):  # without the hand-over: refused, not re-embedded
        retrievers.ContextualCompressionRetriever(
            base_compressor=scoring, base_retriever=opened.store.as_retriever(search_kwargs={"k": 4})).invoke(QUERY)


def test_ensemble_retriever_keeps_both_walls_with_the_seal_as_id_key(splitter, strict, tmp_path):
    """EnsembleRetriever deduplicates by page_content unless given id_key: the seal (unique per document and place)
    keeps each document's chunk; Document ids differ too."""
    chunks = splitter.split_documents(SOURCES)
    walls = [c for c in chunks if c.page_content == WALL]
    assert walls[0].id != walls[1].id and walls[0].metadata[SEAL_KEY] != walls[1].metadata[SEAL_KEY]
    assert [c.id for c in splitter.split_documents(SOURCES)] == [c.id for c in chunks]  # stable across splits
    memory = open_store("memory", strict, tmp_path, DIMS)
    qdrant = open_store("qdrant", strict, tmp_path, DIMS)
    try:
        for opened in (memory, qdrant):
            opened.store.add_documents(chunks)
        members = [memory.store.as_retriever(search_kwargs={"k": 4}), qdrant.store.as_retriever(search_kwargs={"k": 4})]
        by_seal = retrievers.EnsembleRetriever(retrievers=members, id_key=SEAL_KEY)
        assert [d.page_content for d in by_seal.invoke(QUERY)].count(WALL) == 2
        by_text = retrievers.EnsembleRetriever(retrievers=members)  # LangChain's default: one wall is lost
        assert [d.page_content for d in by_text.invoke(QUERY)].count(WALL) == 1
    finally:
        qdrant.close()


@pytest.mark.parametrize("parent_size", [None, 40])
def test_parent_document_retriever_late_chunks_children_in_their_parent(splitter, strict, tiny_fp32, parent_size):
    """ParentDocumentRetriever with our splitter as child_splitter: each child is late-chunked in the document the
    retriever returns for it, i.e. in its parent chunk when a parent_splitter is given (the intended context: the
    parent is what the LLM sees), in the whole document without one. Every child's seal names that parent."""
    parents = RecursiveCharacterTextSplitter(chunk_size=parent_size, chunk_overlap=0) if parent_size else None
    store = InMemoryVectorStore(strict)
    retriever = retrievers.ParentDocumentRetriever(vectorstore=store, docstore=InMemoryStore(),
                                                   child_splitter=splitter, parent_splitter=parents)
    retriever.add_documents(SOURCES)
    records = {k: (r["text"], r["metadata"], np.asarray(r["vector"])) for k, r in store.store.items()}
    assert len(records) >= 4
    parents_of = {k: retriever.docstore.mget([m["doc_id"]])[0].page_content for k, (_, m, _) in records.items()}
    for key, (_, metadata, _) in records.items():
        assert Seal.decode(metadata[SEAL_KEY]).document == fingerprint(parents_of[key])
    assert (set(parents_of.values()) == {s.page_content for s in SOURCES}) == (parents is None)
    assert_exact(tiny_fp32, list(parents_of.values()), records)
    assert retriever.invoke(QUERY)[0].page_content in {d.page_content for d in
                                                      retriever.docstore.mget(list(retriever.docstore.yield_keys()))}


def test_a_langchain_splitter_or_a_json_round_trip_after_ours_is_refused(splitter, strict, tmp_path):
    chunks = splitter.split_documents(SOURCES)
    pieces = RecursiveCharacterTextSplitter(chunk_size=12, chunk_overlap=0).split_documents(chunks)
    revived = [load(dumpd(c), allowed_objects="core") for c in chunks]
    assert all(SEAL_KEY in p.metadata for p in pieces + revived)  # metadata copied, vector gone
    for kind in KINDS:
        opened = open_store(kind, strict, tmp_path / kind, DIMS)
        try:
            for lost in (pieces, revived):
                with pytest.raises(LateChunkingRequiredError):
                    opened.store.add_documents(lost)
            assert opened.records() == {}
        finally:
            opened.close()
    with pytest.raises(BrokenSealError, match="already a late-chunked chunk"):
        splitter.split_documents(chunks)  # ours again, on our own chunks
    from langchain_core.indexing import InMemoryRecordManager

    records = InMemoryRecordManager("lost")
    records.create_schema()
    with pytest.raises(ValueError, match="its metadata holds a seal, so it is a chunk rebuilt"):
        index(revived, records, InMemoryVectorStore(strict))


def test_a_markdown_header_splitter_before_ours_makes_each_section_a_document(splitter, strict, tiny_fp32):
    """MarkdownHeaderTextSplitter before ours: each section (header text stripped, headers in metadata) is the
    document its chunks are late-chunked in, and the seal says so."""
    markdown = "# Berlin\nBerlin is big. It has a famous wall.\n\n# China\nChina is large. It has a famous wall."
    sections = MarkdownHeaderTextSplitter([("#", "city")]).split_text(markdown)
    opened = open_store("memory", strict, Path(), DIMS)
    opened.store.add_documents(splitter.split_documents(sections))
    records = opened.records()
    assert {m["city"] for _, m, _ in records.values()} == {"Berlin", "China"}
    assert_exact(tiny_fp32, [s.page_content for s in sections], records)


def _add_in_a_worker(model: str, chunks: list[Document]) -> tuple[list[list[float]], str]:
    """In a fresh process: store the pickled chunks through strict embeddings, then try their plain copies."""
    strict = JinaV3Embeddings(model=model, device="cpu", dtype="float32", dimensions=DIMS, strict_late_chunking=True)
    store = InMemoryVectorStore(strict)
    vectors = [store.store[i]["vector"] for i in store.add_documents(chunks)]
    try:
        store.add_documents([Document(page_content=str(c.page_content), metadata=c.metadata) for c in chunks])
    except LateChunkingRequiredError as error:
        return vectors, type(error).__name__
    return vectors, "stored"


def test_strict_and_sealed_chunks_hold_in_a_worker_process(splitter, tiny_model):
    chunks = splitter.split_documents(SOURCES)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        vectors, plain = pool.submit(_add_in_a_worker, tiny_model, chunks).result(timeout=300)
    np.testing.assert_allclose(vectors, [c.page_content.embedding for c in chunks], atol=1e-6)
    assert plain == "LateChunkingRequiredError"


def test_a_metadata_transform_that_keeps_the_seal_stays_exact(splitter, strict, tiny_fp32, tmp_path: Path):
    chunks = splitter.split_documents(SOURCES)
    for chunk in chunks:
        chunk.metadata["lang"] = "en"  # ParentDocumentRetriever, loaders and users add keys like this
    reordered = transformers.LongContextReorder().transform_documents(chunks)
    opened = open_store("chroma", strict, tmp_path, DIMS)
    opened.store.add_documents(list(reordered))
    assert_exact(tiny_fp32, [s.page_content for s in SOURCES], opened.records())
