"""Syncing a store with late chunks: ``langchain_jinav3.index()``/``aindex()`` (LangChain's own ``index()`` with
record keys that cover each chunk's context) with InMemoryRecordManager and SQLRecordManager on SQLite, both cleanup
modes, into InMemoryVectorStore and Qdrant local mode, through generated edit sequences: after every step each
stored vector, read back from the store, is a fresh late chunking of its document's current text, and the stored
chunks are exactly the expected ones. LangChain's ``index()`` over the splitter's chunks is refused by a strict store,
in worker threads too; a chunk whose seal no longer matches is refused by ours."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager
from langchain_core.indexing import aindex as langchain_aindex
from langchain_core.indexing import index as langchain_index
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter

from jinav3 import SEAL_KEY, BrokenSealError, Embedder, InvalidInputError, LateChunkingRequiredError
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter, aindex, index

from .conftest import DIMS

qdrant_client = pytest.importorskip("qdrant_client")
langchain_qdrant = pytest.importorskip("langchain_qdrant")
sql_manager = pytest.importorskip("langchain_classic.indexes")

# Lines that repeat inside and across documents: answers, table rows, log lines, a shared sentence.
LINES = ["Yes.", "Answer: see above.", "| 1 | 2 |", "| 3 | 4 |", "ERROR disk full.", "Berlin has a wall.",
         "Kyoto is old."]
JOINTS = [" ", "\n", "\n\n"]
Key = tuple[str, int, str]  # (source, start, chunk text)


@pytest.fixture
def fp32(tiny_model: str) -> JinaV3Embeddings:
    """Embeddings pinned to float32, so stored vectors compare with a fresh late chunking at 1e-5."""
    return JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)


# -- a store, a record manager, and reading every stored chunk back ----------------------------------------------------
def make_store(kind: str, embeddings: JinaV3Embeddings) -> tuple[Any, Any]:
    """A store and a function reading back ``{(source, start, text): [vectors]}`` from it."""
    if kind == "memory":
        store = InMemoryVectorStore(embeddings)
        return store, lambda: _grouped((r["metadata"], r["text"], r["vector"]) for r in store.store.values())
    from qdrant_client.models import Distance, VectorParams

    client = qdrant_client.QdrantClient(":memory:")
    client.create_collection("chunks", vectors_config=VectorParams(size=DIMS, distance=Distance.COSINE))
    store = langchain_qdrant.QdrantVectorStore(client, "chunks", embeddings)

    def read() -> dict[Key, list[list[float]]]:
        points = client.scroll("chunks", limit=10_000, with_vectors=True)[0]
        return _grouped((p.payload["metadata"], p.payload["page_content"], p.vector) for p in points)

    return store, read


def _grouped(records: Any) -> dict[Key, list[list[float]]]:
    found: dict[Key, list[list[float]]] = {}
    for metadata, text, vector in records:
        found.setdefault((metadata["source"], metadata["start_index"], text), []).append(list(vector))
    return found


def make_manager(kind: str, asynchronous: bool, folder: Path) -> Any:
    namespace = f"chunks-{uuid.uuid4().hex}"
    if kind == "memory":
        return InMemoryRecordManager(namespace)
    path = folder / f"{namespace}.sqlite"
    if asynchronous:
        return sql_manager.SQLRecordManager(namespace, db_url=f"sqlite+aiosqlite:///{path}", async_mode=True)
    return sql_manager.SQLRecordManager(namespace, db_url=f"sqlite:///{path}")


# -- the expected store: a fresh late chunking of each indexed document's text -----------------------------------------
def expected_chunks(embedder: Embedder, texts: dict[str, str], size: int, overlap: int) -> dict[Key, np.ndarray]:
    """Each chunk where LangChain's own splitter places it, with the core's late-chunked vector of that span."""
    own = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, add_start_index=True)
    found: dict[Key, np.ndarray] = {}
    for source, text in texts.items():
        pieces = [d for d in own.create_documents([text]) if d.page_content.strip()]
        spans = [(d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content)) for d in pieces]
        for piece, chunk in zip(pieces, embedder.late_chunk(text, spans=spans, task="retrieval.passage",
                                                            dimensions=DIMS), strict=True):
            found[(source, piece.metadata["start_index"], piece.page_content)] = chunk.embedding
    return found


def assert_store_holds(read: Any, expected: dict[Key, np.ndarray]) -> None:
    stored = read()
    assert Counter({key: len(vectors) for key, vectors in stored.items()}) == Counter(dict.fromkeys(expected, 1))
    for key, vectors in stored.items():
        np.testing.assert_allclose(vectors[0], expected[key], atol=1e-5, err_msg=str(key))


# -- generated documents and edit sequences ----------------------------------------------------------------------------
pieces = st.lists(st.tuples(st.sampled_from(LINES), st.sampled_from(JOINTS)), min_size=1, max_size=8)
steps = st.lists(st.tuples(st.sampled_from(["edit", "delete", "add", "undo"]), st.integers(0, 99), pieces),
                 min_size=1, max_size=3)


def text_of(parts: list[tuple[str, str]]) -> str:
    return "".join(line + joint for line, joint in parts).strip()


def apply(step: tuple[str, int, list[tuple[str, str]]], corpus: dict[str, list[tuple[str, str]]],
          history: list[dict[str, list[tuple[str, str]]]], added: int) -> dict[str, list[tuple[str, str]]]:
    """The corpus after one edit: a line of one document replaced, a document deleted or added, or the last step
    undone."""
    kind, pick, new = step
    sources = sorted(corpus)
    if kind == "undo":
        return history.pop() if history else corpus
    history.append(corpus)
    if kind == "add" or not sources:
        return {**corpus, f"doc{added}": new}
    source = sources[pick % len(sources)]
    if kind == "delete":
        return {s: p for s, p in corpus.items() if s != source}
    edited = list(corpus[source])
    edited[pick % len(edited)] = new[0]
    return {**corpus, source: edited}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.lists(pieces, min_size=1, max_size=3), edits=steps, size=st.integers(12, 60),
       overlap_share=st.sampled_from([0.0, 0.0, 0.3]), batch_size=st.sampled_from([3, 100]),
       cleanup=st.sampled_from(["incremental", "full"]), manager_kind=st.sampled_from(["memory", "sql"]),
       store_kind=st.sampled_from(["memory", "qdrant"]), asynchronous=st.booleans())
def test_every_stored_vector_is_a_fresh_late_chunking_after_every_edit(
    fp32, tiny_fp32, tmp_path, start, edits, size, overlap_share, batch_size, cleanup, manager_kind, store_kind,
    asynchronous,
):
    overlap = int(size * overlap_share)
    splitter = JinaV3LateChunkingSplitter(fp32, RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap),
                                          add_start_index=True)
    store, read = make_store(store_kind, fp32)
    manager = make_manager(manager_kind, asynchronous, tmp_path)
    options = {"cleanup": cleanup, "source_id_key": "source", "batch_size": batch_size}

    async def sync(corpus: dict[str, list[tuple[str, str]]]) -> None:
        documents = [Document(page_content=text_of(p), metadata={"source": s}) for s, p in sorted(corpus.items())]
        if asynchronous:
            await aindex(await splitter.atransform_documents(documents), manager, store, **options)
        else:
            index(splitter.split_documents(documents), manager, store, **options)

    async def run() -> None:
        await manager.acreate_schema() if asynchronous else manager.create_schema()
        corpus = {f"doc{i}": p for i, p in enumerate(start)}
        indexed: dict[str, str] = {}
        history: list[dict[str, list[tuple[str, str]]]] = []
        for number, step in enumerate([None, *edits]):
            if step is not None:
                corpus = apply(step, corpus, history, added=len(start) + number)
            time.sleep(0.002)  # SQLite's clock ticks in milliseconds; index() compares record times to its start
            await sync(corpus)
            current = {s: text_of(p) for s, p in corpus.items()}
            # Full cleanup drops vanished documents; incremental keeps them (LangChain's semantics).
            indexed = current if cleanup == "full" else {**indexed, **current}
            assert_store_holds(read, expected_chunks(tiny_fp32, indexed, size, overlap))

    asyncio.run(run())
    event(f"{store_kind} store, {manager_kind} records, {cleanup}, {'async' if asynchronous else 'sync'}")
    event(f"{len(edits) + 1} index runs")


def test_an_edit_replaces_every_chunk_of_that_document_and_skips_the_others(fp32, splitter):
    loaded = datetime.date(2026, 1, 1)  # loaders add metadata that JSON cannot hold; keys stay stable
    documents = [Document(page_content="Yes. Yes. Berlin has a wall. Yes.", metadata={"source": "a", "on": loaded}),
                 Document(page_content="Kyoto is old. Yes. It has temples.", metadata={"source": "b", "on": loaded})]
    manager = InMemoryRecordManager("edit")
    manager.create_schema()
    store = InMemoryVectorStore(fp32)
    first = index(splitter.split_documents(documents), manager, store, cleanup="incremental", source_id_key="source")
    assert first == {"num_added": 7, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    documents[0].page_content = "Yes. Yes. Berlin has a big wall. Yes."  # three of its four chunks keep their text
    second = index(splitter.split_documents(documents), manager, store, cleanup="incremental", source_id_key="source")
    assert second == {"num_added": 4, "num_updated": 0, "num_skipped": 3, "num_deleted": 4}


@pytest.fixture
def strict(fp32: JinaV3Embeddings) -> JinaV3Embeddings:
    return fp32.model_copy(update={"strict_late_chunking": True})


def test_langchains_own_index_into_a_strict_store_is_refused(strict, splitter, documents):
    """LangChain's index() rebuilds every Document (the chunk text loses its vector): a strict store refuses the
    plain texts before anything is written, store and record manager alike."""
    chunks = splitter.split_documents(documents)
    manager = InMemoryRecordManager("refused")
    manager.create_schema()
    store = InMemoryVectorStore(strict)
    with pytest.raises(LateChunkingRequiredError, match=r"without a late-chunked vector.*langchain_jinav3\.index"):
        langchain_index(chunks, manager, store, cleanup="full", key_encoder="sha256")
    with pytest.raises(LateChunkingRequiredError, match=r"use langchain_jinav3\.index\(\) / aindex\(\)"):
        asyncio.run(langchain_aindex(chunks, manager, store, cleanup="full", key_encoder="sha256"))
    assert store.store == {}
    assert manager.list_keys() == []
    qdrant, read = make_store("qdrant", strict)
    with pytest.raises(LateChunkingRequiredError):
        langchain_index(chunks, manager, qdrant, cleanup="full", key_encoder="sha256")
    assert read() == {}
    # Queries through the same strict embeddings are never affected.
    assert len(strict.embed_query(str(chunks[0].page_content))) == DIMS


class ThreadedAsyncStore(InMemoryVectorStore):
    """A store whose async add runs its sync add with ``asyncio.to_thread``, as many community stores do."""

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add_documents, documents, **kwargs)


@pytest.mark.parametrize("kind", ["qdrant", "to_thread"])
def test_langchains_aindex_through_a_worker_thread_is_refused(strict, splitter, documents, kind):
    """Qdrant's async add runs its sync add in an executor thread (LangChain's run_in_executor), another store's with
    asyncio.to_thread: the strict check needs no call stack, so it holds there as anywhere."""
    chunks = splitter.split_documents(documents)
    manager = InMemoryRecordManager(f"threaded-{kind}")
    manager.create_schema()
    if kind == "qdrant":
        store, read = make_store("qdrant", strict)
    else:
        store = ThreadedAsyncStore(strict)
        read = lambda: store.store  # noqa: E731
    with pytest.raises(LateChunkingRequiredError, match=r"langchain_jinav3\.index\(\) / aindex\(\)"):
        asyncio.run(langchain_aindex(chunks, manager, store, key_encoder="sha1"))
    assert read() == {}
    assert manager.list_keys() == []
    # The supported way through the same store is exact.
    result = asyncio.run(aindex(chunks, manager, store, cleanup="full", source_id_key="source"))
    assert result["num_added"] == len(chunks)


def test_a_lenient_store_takes_plain_texts_as_plain_requests(fp32, splitter, documents):
    """strict_late_chunking=False (the default: the embeddings also serve plain stores): LangChain's index() then
    stores plain vectors, with a warning naming the strict mode. This is why a late-chunking store gets
    splitter.store_embeddings()."""
    chunks = splitter.split_documents(documents)
    manager = InMemoryRecordManager("lenient")
    manager.create_schema()
    store = InMemoryVectorStore(fp32)
    with pytest.warns(UserWarning, match=r"without their late-chunked vector.*strict_late_chunking=True"):
        langchain_index(chunks, manager, store, key_encoder="sha256")
    plain = fp32.core.embed([str(c.page_content) for c in chunks], "retrieval.passage", DIMS)
    np.testing.assert_allclose(sorted(map(list, (r["vector"] for r in store.store.values()))),
                               sorted(map(list, plain)), atol=1e-6)


def test_a_chunk_with_a_changed_or_missing_seal_is_refused_before_anything_is_written(fp32, splitter, documents):
    chunks = splitter.split_documents(documents)
    manager = InMemoryRecordManager("sealed")
    manager.create_schema()
    store = InMemoryVectorStore(fp32)
    other_seal = {**chunks[0].metadata, SEAL_KEY: chunks[1].metadata[SEAL_KEY]}
    swapped = [chunks[0].model_copy(update={"metadata": other_seal}), *chunks[1:]]
    with pytest.raises(BrokenSealError, match="another seal in its metadata"):
        index(swapped, manager, store)
    dropped = [chunks[0].model_copy(update={"metadata": {"source": "a.txt"}}), *chunks[1:]]
    with pytest.raises(BrokenSealError, match="no seal in its metadata"):
        index(dropped, manager, store)
    rebuilt = [Document(page_content=str(c.page_content), metadata=c.metadata) for c in chunks]
    with pytest.raises(InvalidInputError, match="its metadata holds a seal, so it is a chunk rebuilt"):
        index(rebuilt, manager, store)
    assert store.store == {}
    assert manager.list_keys() == []


def test_bad_input_is_named(fp32, documents):
    manager = InMemoryRecordManager("bad")
    manager.create_schema()
    store = InMemoryVectorStore(fp32)
    with pytest.raises(InvalidInputError, match=r"without a late-chunked vector \('Berlin is the capital"):
        index(documents, manager, store)  # source documents, not the splitter's chunks
    with pytest.raises(InvalidInputError, match="vector_store must be a LangChain VectorStore, got dict"):
        index([], manager, {})
    with pytest.raises(InvalidInputError, match="sets key_encoder itself"):
        index([], manager, store, key_encoder="sha256")
