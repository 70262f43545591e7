"""JinaV3DocumentWriter keeps a store in sync with late chunking through random edit sequences.

Generated corpora of documents built from a small pool of sentences, lines and table rows (so text repeats within
and across documents) go through a Pipeline (DocumentSplitter with random settings → JinaV3DocumentEmbedder with
late chunking → JinaV3DocumentWriter, or JinaV3LateChunkingSplitter around the same DocumentSplitter → writer) into
InMemoryDocumentStore or Qdrant local mode. After every step (edit, delete, add, undo), each stored chunk equals the
splitter's own chunks of its document's current text (no stale, orphan or duplicate chunk) and its embedding equals
the core's late chunking of that current text (fp32, 1e-5).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.preprocessors import DocumentSplitter
from haystack.document_stores.errors import DocumentStoreError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from haystack_integrations.components.writers.jinav3 import JinaV3DocumentWriter
from jinav3 import InvalidInputError

SOURCE_KEY = "file_path"
PIECES = [
    "Answer: see above.", "Yes.", "The wall fell in 1989.", "Berlin is the capital.", "It has many museums.",
    "| id | city | year |", "| 1 | Berlin | 1989 |", "| 1 | Berlin | 1989 |", "ERROR disk full", "Total: 3",
]
SEPARATORS = ["\n", " ", "\n\n", ". "]

pieces = st.lists(st.sampled_from(PIECES), min_size=1, max_size=8)
texts = st.builds(lambda parts, sep: sep.join(parts), pieces, st.sampled_from(SEPARATORS))


@st.composite
def splitter_settings(draw: st.DrawFn) -> dict[str, Any]:
    length = draw(st.integers(1, 4))
    return {"split_by": draw(st.sampled_from(["word", "line", "period", "passage"])), "split_length": length,
            "split_overlap": draw(st.integers(0, length - 1))}


@pytest.fixture(scope="module")
def fp32(tiny_checkpoint) -> dict[str, Any]:
    return {"model": str(tiny_checkpoint), "backend_options": {"device": "cpu", "dtype": "float32"}}


def make_store(kind: str) -> Any:
    if kind == "memory":
        return InMemoryDocumentStore()
    qdrant = pytest.importorskip("haystack_integrations.document_stores.qdrant")
    return qdrant.QdrantDocumentStore(location=":memory:", embedding_dim=32, similarity="cosine",
                                      return_embedding=True, recreate_index=True, progress_bar=False)


def indexing(fp32: dict[str, Any], split: dict[str, Any], wiring: str, writer: JinaV3DocumentWriter) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("writer", writer)
    if wiring == "embedder":
        pipeline.add_component("splitter", DocumentSplitter(**split))
        pipeline.add_component("embedder", JinaV3DocumentEmbedder(**fp32, late_chunking=True, progress_bar=False))
        pipeline.connect("splitter.documents", "embedder.documents")
        pipeline.connect("embedder.documents", "writer.documents")
    else:
        pipeline.add_component("splitter", JinaV3LateChunkingSplitter(
            **fp32, document_splitter=DocumentSplitter(**split), progress_bar=False))
        pipeline.connect("splitter.documents", "writer.documents")
    return pipeline


@functools.cache
def late_chunks(core: Any, text: str, spans: tuple[tuple[int, int], ...]) -> dict[tuple[int, str], np.ndarray]:
    """The independent reference: the core's late chunking of the whole current text, by (start, chunk text)."""
    return {(chunk.start, chunk.text): chunk.embedding
            for chunk in core.late_chunk(text, spans=list(spans), task="retrieval.passage")}


def check_store(store: Any, corpus: dict[str, str], split: dict[str, Any], core: Any) -> int:
    """The store holds exactly the splitter's chunks of each current text, each with the core's late-chunked
    vector of that text; returns the number of chunks checked."""
    stored: dict[str, list[Document]] = {}
    for doc in store.filter_documents():
        stored.setdefault(doc.meta[SOURCE_KEY], []).append(doc)
    assert set(stored) == set(corpus), "a deleted document left chunks, or a current one has none"
    splitter = DocumentSplitter(**split)
    for name, text in corpus.items():
        expected = [c for c in splitter.run(documents=[Document(content=text)])["documents"] if c.content]
        got = stored[name]
        assert Counter((d.content, d.meta["split_idx_start"]) for d in got) == Counter(
            (c.content, c.meta["split_idx_start"]) for c in expected), f"stale or missing chunks of {name}"
        spans = [(c.meta["split_idx_start"], c.meta["split_idx_start"] + len(c.content)) for c in expected]
        truth = late_chunks(core, text, tuple(spans))
        for doc in got:
            assert text[doc.meta["split_idx_start"]:][: len(doc.content)] == doc.content
            np.testing.assert_allclose(doc.embedding, truth[(doc.meta["split_idx_start"], doc.content)], atol=1e-5)
    return sum(len(docs) for docs in stored.values())


CASES = Counter()


@pytest.mark.parametrize("kind", ["memory", "qdrant"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), split=splitter_settings(), wiring=st.sampled_from(["embedder", "splitter"]),
       cleanup=st.sampled_from(["incremental", "full"]))
def test_every_step_leaves_exactly_the_current_late_chunks(fp32, tiny_fp32, data, split, wiring, kind, cleanup):
    store = make_store(kind)
    pipeline = indexing(fp32, split, wiring, JinaV3DocumentWriter(store, source_key=SOURCE_KEY, cleanup=cleanup))
    corpus: dict[str, str] = {f"doc{i}.txt": data.draw(texts) for i in range(data.draw(st.integers(1, 3)))}
    history: list[dict[str, str]] = []
    previous: dict[str, str] = {}
    CASES[f"{kind} cases"] += 1
    for _step in range(data.draw(st.integers(2, 5))):
        changed = [name for name in corpus if previous.get(name) != corpus[name]]
        removed = [name for name in previous if name not in corpus]
        sent = list(corpus) if cleanup == "full" else changed
        inputs: dict[str, Any] = {"splitter": {"documents": [Document(content=corpus[name], meta={SOURCE_KEY: name})
                                                             for name in sent]}}
        if cleanup == "incremental":
            inputs["writer"] = {"delete_sources": removed}
        pipeline.run(inputs)
        CASES[f"{kind} steps"] += 1
        check_store(store, corpus, split, tiny_fp32)
        history.append(dict(corpus))
        previous = dict(corpus)
        op = data.draw(st.sampled_from(["edit", "delete", "add", "undo"]))
        names = sorted(corpus)
        if op == "edit" and names:
            corpus[data.draw(st.sampled_from(names))] = data.draw(texts)
        elif op == "delete" and names:
            del corpus[data.draw(st.sampled_from(names))]
        elif op == "add":
            corpus[f"doc{len(history) + 3}.txt"] = data.draw(texts)
        elif op == "undo" and len(history) > 1:
            corpus = dict(history[-2])


@pytest.fixture(scope="module", autouse=True)
def report_case_count() -> Iterator[None]:
    """After the module: generated cases and pipeline steps checked, per store (shown with ``-s``)."""
    yield
    if CASES:
        print(f"\nJinaV3DocumentWriter sync: {dict(CASES)}")


def test_an_edit_replaces_every_chunk_and_leaves_other_sources(fp32):
    """The issue's case: one sentence of a long document edited; unchanged chunk texts get their new context."""
    store = InMemoryDocumentStore()
    writer = JinaV3DocumentWriter(store, source_key=SOURCE_KEY)
    pipeline = indexing(fp32, {"split_by": "period", "split_length": 1, "split_overlap": 0}, "splitter", writer)
    long = " ".join(f"Sentence {i} is about Berlin." for i in range(9))
    docs = [Document(content=long, meta={SOURCE_KEY: "a"}), Document(content="Kyoto. Temples.", meta={SOURCE_KEY: "b"})]
    assert pipeline.run({"splitter": {"documents": docs}})["writer"] == {"documents_written": 11,
                                                                          "documents_deleted": 0}
    before = {d.id: d for d in store.filter_documents()}
    edited = long.replace("Sentence 4 is about Berlin.", "Sentence 4 is about Kyoto.")
    result = pipeline.run({"splitter": {"documents": [Document(content=edited, meta={SOURCE_KEY: "a"})]}})
    assert result["writer"] == {"documents_written": 9, "documents_deleted": 9}
    after = store.filter_documents()
    assert len(after) == 11
    assert {d.id for d in after if d.meta[SOURCE_KEY] == "b"} == {i for i, d in before.items()
                                                                   if d.meta[SOURCE_KEY] == "b"}
    same_text = {d.content: d for d in before.values() if d.meta[SOURCE_KEY] == "a"}
    for doc in after:
        if doc.meta[SOURCE_KEY] == "a" and doc.content in same_text:
            assert doc.id != same_text[doc.content].id
            assert not np.allclose(doc.embedding, same_text[doc.content].embedding, atol=1e-7)
    unchanged = pipeline.run({"splitter": {"documents": [Document(content=edited, meta={SOURCE_KEY: "a"})]}})
    assert unchanged["writer"] == {"documents_written": 9, "documents_deleted": 0}  # same ids: overwritten
    assert {d.id for d in store.filter_documents()} == {d.id for d in after}


async def test_async_run_syncs_like_run(fp32):
    store = InMemoryDocumentStore()
    writer = JinaV3DocumentWriter(store, source_key=SOURCE_KEY)
    docs = [Document(content="One. Two.", meta={SOURCE_KEY: "a"}, embedding=[1.0, 0.0]),
            Document(content="Three.", meta={SOURCE_KEY: "b"}, embedding=[0.0, 1.0])]
    assert await writer.run_async(documents=docs) == {"documents_written": 2, "documents_deleted": 0}
    assert await writer.run_async(documents=[], delete_sources=["a"]) == {"documents_written": 0,
                                                                          "documents_deleted": 1}
    assert [d.meta[SOURCE_KEY] for d in store.filter_documents()] == ["b"]
    full = JinaV3DocumentWriter(store, source_key=SOURCE_KEY, cleanup="full")
    assert await full.run_async(documents=docs[:1]) == {"documents_written": 1, "documents_deleted": 1}
    assert writer.run(documents=docs[1:]) == {"documents_written": 1, "documents_deleted": 0}


def test_documents_outside_the_writer_are_never_touched():
    store = InMemoryDocumentStore()
    store.write_documents([Document(content="written by someone else")])
    writer = JinaV3DocumentWriter(store, source_key=SOURCE_KEY, cleanup="full")
    writer.run(documents=[Document(content="x", meta={SOURCE_KEY: "a"})])
    assert writer.run(documents=[])["documents_deleted"] == 1
    assert [d.content for d in store.filter_documents()] == ["written by someone else"]


def test_serialisation_and_yaml_round_trip(fp32):
    writer = JinaV3DocumentWriter(InMemoryDocumentStore(), source_key="doc_key", cleanup="full")
    data = writer.to_dict()
    assert data["init_parameters"]["source_key"] == "doc_key" and data["init_parameters"]["cleanup"] == "full"
    assert JinaV3DocumentWriter.from_dict(data).to_dict() == data
    pipeline = indexing(fp32, {"split_by": "word", "split_length": 3, "split_overlap": 1}, "embedder", writer)
    loaded = Pipeline.loads(pipeline.dumps())
    assert loaded.to_dict()["components"] == pipeline.to_dict()["components"]
    result = loaded.run({"splitter": {"documents": [Document(content="a b c d e", meta={"doc_key": 7})]}})
    assert result["writer"]["documents_written"] == 2


@pytest.mark.parametrize(
    ("documents", "delete_sources", "error", "message"),
    [
        ([Document(content="x")], None, InvalidInputError, "chunk .* has no meta\\['file_path'\\]"),
        ([Document(content="x", meta={SOURCE_KEY: ["a"]})], None, InvalidInputError, "unusable \\(list\\)"),
        ([Document(content="x", meta={SOURCE_KEY: "a"})], ["a"], InvalidInputError, "both|also have chunks"),
        ([Document(content="x", meta={SOURCE_KEY: "a"})], "a", TypeError, "delete_sources must be a list"),
        ([Document(content="x", meta={SOURCE_KEY: "a", "source_id": "1"}),
          Document(content="y", meta={SOURCE_KEY: "a", "source_id": "2"})], None, InvalidInputError,
         "2 different documents .* share meta\\['file_path'\\] = 'a'"),
        ("x", None, TypeError, "list of Documents"),
    ],
)
def test_bad_input_is_named(documents, delete_sources, error, message):
    with pytest.raises(error, match=message):
        JinaV3DocumentWriter(InMemoryDocumentStore(), source_key=SOURCE_KEY).run(documents, delete_sources)


def test_bad_settings_are_named():
    with pytest.raises(TypeError, match="has no filter_documents, write_documents, delete_documents"):
        JinaV3DocumentWriter(object(), source_key=SOURCE_KEY)
    with pytest.raises(InvalidInputError, match=r"without 'meta\.'"):
        JinaV3DocumentWriter(InMemoryDocumentStore(), source_key="meta.file_path")
    with pytest.raises(InvalidInputError, match="unknown cleanup"):
        JinaV3DocumentWriter(InMemoryDocumentStore(), source_key=SOURCE_KEY, cleanup="all")


class NoFilterStore(InMemoryDocumentStore):
    """A store that cannot filter by meta (as some vector stores cannot)."""

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        if filters:
            raise NotImplementedError("metadata filters are not supported")
        return super().filter_documents()


class IgnoringStore(InMemoryDocumentStore):
    """A store that silently ignores filters: the writer must not delete other sources on its word."""

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        return super().filter_documents()


def test_a_store_that_cannot_filter_by_meta_is_named():
    with pytest.raises(DocumentStoreError, match=r"NoFilterStore could not filter documents by meta\.file_path"):
        JinaV3DocumentWriter(NoFilterStore(), source_key=SOURCE_KEY).run([Document(content="x", meta={SOURCE_KEY: 1})])
    store = IgnoringStore()
    writer = JinaV3DocumentWriter(store, source_key=SOURCE_KEY)
    writer.run([Document(content="x", meta={SOURCE_KEY: "a"})])
    with pytest.raises(DocumentStoreError, match="ignored the filter"):
        writer.run([Document(content="y", meta={SOURCE_KEY: "b"})])
    assert [d.content for d in store.filter_documents()] == ["x"]
