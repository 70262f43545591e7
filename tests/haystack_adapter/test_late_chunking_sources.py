"""Late chunking of a splitter's chunks inside Haystack pipelines: the source is rebuilt exactly from
``split_idx_start`` (overlaps included), whitespace-only chunks get vectors instead of aborting the run, text no
chunk covers is never invented (warning), contradicting chunks are refused, and a document embedder after a
late-chunking splitter keeps the contextual vectors."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.preprocessors import DocumentSplitter
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from jinav3 import SEAL_KEY, Embedder, InvalidInputError, Seal

from .texts import BERLIN, KYOTO

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"
DIMS = 16
PIECES = ["Berlin", "is", "big.", "It", "has", "a", "wall.", "Kyoto", "was", "old!", "Why?", " ", "  ", "\n", "\n\n",
          "\t", "\f", "émigré", "東京", "。", "x.y"]

sources = st.lists(st.sampled_from(PIECES), min_size=1, max_size=40).map(" ".join).filter(str.strip)
split_settings = st.tuples(
    st.sampled_from(["word", "period", "passage", "line"]), st.integers(1, 6), st.integers(0, 5)
).filter(lambda s: s[2] < s[1])


def split(source: Document, split_by: str, length: int, overlap: int) -> list[Document]:
    return DocumentSplitter(split_by=split_by, split_length=length, split_overlap=overlap).run(
        documents=[source])["documents"]


def expected_vectors(core: Embedder, source: Document, chunks: list[Document], **options) -> np.ndarray:
    """Late chunking over the TRUE source, with each chunk's true span."""
    spans = [(c.meta["split_idx_start"], c.meta["split_idx_start"] + len(c.content)) for c in chunks]
    for chunk, (start, end) in zip(chunks, spans, strict=True):
        assert source.content[start:end] == chunk.content  # what DocumentSplitter promises
    found = core.late_chunk(source.content, spans=spans, task="retrieval.passage", dimensions=DIMS, **options)
    return np.array([c.embedding for c in found])


def stored(store: InMemoryDocumentStore, chunks: list[Document]) -> np.ndarray:
    by_id = {d.id: d for d in store.filter_documents()}
    return np.array([by_id[c.id].embedding for c in chunks])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=sources, options=split_settings, seed=st.integers(0, 2**16))
def test_document_splitter_then_embedder_equals_late_chunking_over_the_true_source(tiny, text, options, seed):
    source = Document(content=text)
    chunks = split(source, *options)
    store = InMemoryDocumentStore()
    pipeline = Pipeline()
    pipeline.add_component("splitter", DocumentSplitter(split_by=options[0], split_length=options[1],
                                                        split_overlap=options[2]))
    pipeline.add_component("embedder", JinaV3DocumentEmbedder(**tiny, late_chunking=True, dimensions=DIMS,
                                                              progress_bar=False))
    pipeline.add_component("writer", DocumentWriter(document_store=store))
    pipeline.connect("splitter.documents", "embedder.documents")
    pipeline.connect("embedder.documents", "writer.documents")
    pipeline.run({"splitter": {"documents": [source]}})
    core = pipeline.get_component("embedder").embedder
    np.testing.assert_allclose(stored(store, chunks), expected_vectors(core, source, chunks), atol=1e-6)
    # the same chunks in any order, mixed with another source's, give the same vectors
    other = split(Document(content=KYOTO), "word", 3, 1)
    mixed = chunks + other
    random.Random(seed).shuffle(mixed)
    out = JinaV3DocumentEmbedder(**tiny, late_chunking=True, dimensions=DIMS, progress_bar=False).run(
        documents=mixed)["documents"]
    got = {d.id: d.embedding for d in out}
    np.testing.assert_allclose([got[c.id] for c in chunks], expected_vectors(core, source, chunks), atol=1e-6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=sources, options=split_settings)
def test_late_chunking_splitter_with_document_splitter_equals_the_core(tiny, text, options):
    source = Document(content=text)
    boundaries = DocumentSplitter(split_by=options[0], split_length=options[1], split_overlap=options[2])
    splitter = JinaV3LateChunkingSplitter(**tiny, dimensions=DIMS, progress_bar=False, document_splitter=boundaries)
    out = splitter.run(documents=[source])["documents"]
    plain = split(source, *options)
    assert [d.id for d in out] == [d.id for d in plain]
    np.testing.assert_allclose([d.embedding for d in out], expected_vectors(splitter.embedder, source, plain),
                               atol=1e-6)


def test_overlapping_word_chunks_of_the_corpus_with_a_real_model(minilm_dir, caplog):
    """The reported case: split_overlap=10 on Berlin. The source is rebuilt exactly (not appended to itself)."""
    model = {"model": str(minilm_dir), "backend_options": {"device": "cpu"}}
    source = Document(content=(CORPUS / "berlin_en.txt").read_text(encoding="utf-8"))
    chunks = split(source, "word", 40, 10)
    embedder = JinaV3DocumentEmbedder(**model, late_chunking=True, progress_bar=False)
    with caplog.at_level(logging.WARNING):
        out = embedder.run(documents=chunks)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("haystack_int")]
    spans = [(c.meta["split_idx_start"], c.meta["split_idx_start"] + len(c.content)) for c in chunks]
    truth = embedder.embedder.late_chunk(source.content, spans=spans, task="retrieval.passage")
    got = np.array([d.embedding for d in out["documents"]])
    np.testing.assert_allclose(got, [c.embedding for c in truth], atol=1e-5)
    # 282 tokens in MiniLM's 256-token context: two windows, the tokens they share are read twice
    assert out["meta"]["usage"]["prompt_tokens"] == 2 * embedder.embedder.max_length
    assert len(embedder.embedder.tokenizer.encode(source.content).ids) == 282


def test_whitespace_only_chunks_get_vectors_and_never_abort(tiny):
    """DocumentSplitter(split_by="period") ends lyon_fr.txt with a "\\n" chunk: it is part of the source, so it
    gets the core's vector for that span, like every other chunk."""
    source = Document(content=(CORPUS / "lyon_fr.txt").read_text(encoding="utf-8"))
    chunks = split(source, "period", 1, 0)
    assert any(not c.content.strip() for c in chunks)
    embedder = JinaV3DocumentEmbedder(**tiny, late_chunking=True, dimensions=DIMS, progress_bar=False)
    out = embedder.run(documents=chunks)["documents"]
    np.testing.assert_allclose([d.embedding for d in out], expected_vectors(embedder.embedder, source, chunks),
                               atol=1e-6)
    splitter = JinaV3LateChunkingSplitter(**tiny, dimensions=DIMS, progress_bar=False,
                                          document_splitter=DocumentSplitter(split_by="period", split_length=1))
    assert [d.embedding for d in splitter.run(documents=[source])["documents"]] == [d.embedding for d in out]


@pytest.mark.parametrize("name", ["lyon_fr.txt", "berlin_en.txt"])
def test_whitespace_only_chunks_with_a_real_tokenizer(minilm_dir, name):
    """With a real tokenizer whitespace has no token of its own; the core pools the next token for such a span
    (the previous one at the very end). Needs the core's whitespace-span rule (issue 12)."""
    model = {"model": str(minilm_dir), "backend_options": {"device": "cpu"}}
    source = Document(content=(CORPUS / name).read_text(encoding="utf-8") + "\n\n")
    chunks = split(source, "period", 1, 0)
    assert any(not c.content.strip() for c in chunks)
    embedder = JinaV3DocumentEmbedder(**model, late_chunking=True, progress_bar=False)
    out = embedder.run(documents=chunks)["documents"]
    assert all(d.embedding is not None for d in out)
    spans = [(c.meta["split_idx_start"], c.meta["split_idx_start"] + len(c.content)) for c in chunks]
    truth = embedder.embedder.late_chunk(source.content, spans=spans, task="retrieval.passage")
    np.testing.assert_allclose([d.embedding for d in out], [c.embedding for c in truth], atol=1e-5)


def test_chunks_without_text_keep_no_embedding_and_are_named(tiny, caplog):
    chunks = split(Document(content=BERLIN), "period", 1, 0)
    empty = Document(content="", meta={**chunks[0].meta, "split_id": 99, "split_idx_start": len(BERLIN)})
    embedder = JinaV3DocumentEmbedder(**tiny, late_chunking=True, dimensions=DIMS, progress_bar=False)
    with caplog.at_level(logging.WARNING):
        out = embedder.run(documents=[*chunks, empty])["documents"]
    assert out[-1].embedding is None and all(d.embedding is not None for d in out[:-1])
    assert empty.id in caplog.text


def test_uncovered_text_is_refused_not_late_chunked_per_piece(tiny):
    """A chunk removed between splitter and embedder leaves a gap: the source cannot be rebuilt, so the run is
    refused (it used to late-chunk each covered stretch alone, with a warning only)."""
    chunks = split(Document(content=BERLIN), "period", 1, 0)
    embedder = JinaV3DocumentEmbedder(**tiny, late_chunking=True, dimensions=DIMS, progress_bar=False)
    with pytest.raises(InvalidInputError, match=f"covers characters {len(chunks[0].content)}"):
        embedder.run(documents=[chunks[0], chunks[2]])
    with pytest.raises(InvalidInputError, match="do not rebuild that document exactly"):
        embedder.run(documents=chunks[:2])  # the end is missing: only the source id shows it


def test_chunks_that_contradict_each_other_are_refused(tiny):
    chunks = split(Document(content=BERLIN), "word", 4, 2)
    changed = [chunks[0], Document(content=chunks[1].content.upper(), meta=chunks[1].meta)]
    embedder = JinaV3DocumentEmbedder(**tiny, late_chunking=True, progress_bar=False)
    with pytest.raises(InvalidInputError, match="disagree about the text"):
        embedder.run(documents=changed)


def test_chunks_without_offsets_are_refused(tiny):
    chunks = [Document(content=t, meta={"source_id": "s", "split_id": i})
              for i, t in enumerate(("Berlin is big.", "It has a wall."))]
    embedder = JinaV3DocumentEmbedder(**tiny, late_chunking=True, progress_bar=False)
    with pytest.raises(InvalidInputError, match="no split_idx_start"):
        embedder.run(documents=chunks)


def test_a_document_embedder_after_the_splitter_keeps_the_contextual_vectors(tiny, caplog):
    def pipeline(**embedder_options):
        store = InMemoryDocumentStore()
        p = Pipeline()
        p.add_component("splitter", JinaV3LateChunkingSplitter(**tiny, dimensions=DIMS, progress_bar=False))
        p.add_component("embedder", JinaV3DocumentEmbedder(**tiny, progress_bar=False, **embedder_options))
        p.add_component("writer", DocumentWriter(document_store=store))
        p.connect("splitter.documents", "embedder.documents")
        p.connect("embedder.documents", "writer.documents")
        result = p.run({"splitter": {"documents": [Document(content=BERLIN)]}}, include_outputs_from={"splitter"})
        return result["splitter"]["documents"], store.filter_documents()

    with caplog.at_level(logging.INFO):
        late, kept = pipeline(dimensions=DIMS)
    assert "kept the late-chunked vectors of 3 documents" in caplog.text
    by_id = {d.id: d.embedding for d in kept}
    assert [by_id[d.id] for d in late] == [d.embedding for d in late]
    assert all(Seal.decode(d.meta[SEAL_KEY]).space.endswith(f"@{DIMS}") for d in kept)
    late, replaced = pipeline(dimensions=DIMS, overwrite=True)  # plain vectors now, so no seal
    by_id = {d.id: d for d in replaced}
    assert not np.allclose([by_id[d.id].embedding for d in late], [d.embedding for d in late], atol=1e-4)
    assert not any(SEAL_KEY in d.meta for d in replaced)
    with pytest.raises(Exception, match="late-chunked in vector space"):
        pipeline(dimensions=8)  # another width would mix two vector spaces in one store


def test_binary_embeddings_and_a_text_embedder_with_late_chunking(tiny):
    embedder = JinaV3DocumentEmbedder(**tiny, embedding_type="binary", progress_bar=False)
    out = embedder.run(documents=[Document(content=BERLIN)])["documents"]
    expected = embedder.embedder.embed([BERLIN], "retrieval.passage", embedding_type="binary_float")[0]
    assert out[0].embedding == expected.tolist() and len(out[0].embedding) == 32  # ±1 floats (see test_binary)
    splitter = JinaV3LateChunkingSplitter(**tiny, embedding_type="ubinary", progress_bar=False)
    chunks = splitter.run(documents=[Document(content=KYOTO)])["documents"]
    assert all(v in (-1.0, 1.0) for d in chunks for v in d.embedding)
    with pytest.raises(InvalidInputError, match="cannot be stored"):
        JinaV3DocumentEmbedder(embedding_type="base64")
    text = JinaV3TextEmbedder(**tiny, late_chunking=True).run(text=BERLIN)["embedding"]
    whole = embedder.embedder.late_chunk(BERLIN, spans=[(0, len(BERLIN))], task="retrieval.query")[0].embedding
    np.testing.assert_allclose(text, whole, atol=1e-6)  # one text = one chunk: late chunking changes nothing
