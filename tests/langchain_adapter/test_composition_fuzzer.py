"""A composition fuzzer: random pipelines of LangChain's own components around ours, checked against the core.

Each generated pipeline takes a few documents (repeated sentences across documents, markdown headers) through
  * a step BEFORE ours on the source documents: none, MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter
    (sections become documents), LongContextReorder;
  * our JinaV3LateChunkingSplitter, sync or async, whose boundaries come from "sentences", "paragraphs",
    RecursiveCharacterTextSplitter, CharacterTextSplitter, MarkdownTextSplitter or SentenceTransformersTokenTextSplitter
    (MiniLM, offline; TokenTextSplitter is left out: tiktoken downloads its encoding);
  * a step AFTER ours on the chunks: none, LongContextReorder, a metadata edit, a metadata replacement, a LangChain
    splitter re-splitting the chunks, a JSON round trip (dumpd/load), a pydantic rebuild, ours again;
  * a write: add_documents / aadd_documents, our index() / aindex(), LangChain's own index() (record managers:
    InMemoryRecordManager, SQLRecordManager on SQLite), into InMemoryVectorStore, Qdrant local mode on disk or Chroma's
    persistent client, through the store embeddings the guide prescribes (``splitter.store_embeddings()``);
  * edits and deletes of documents re-synced with cleanup="full" (index paths), or another document added;
  * a query: ContextualCompressionRetriever with EmbeddingsRedundantFilter or EmbeddingsFilter, with or without
    StoredVectors in front, or an EnsembleRetriever (id_key=SEAL_KEY) that must keep every chunk the store returns.
Property: after every step, every vector in the store equals a fresh fp32 late chunking (by the core) of its own
span in its own current document (<= 1e-5), or the step raised an InvalidInputError and left the store as it was;
a query-time filter either compares the stored vectors or raises.

``JINAV3_FUZZ_REPORT=path`` records each pipeline's outcome (JSON lines) instead of failing on a violation; run
against the adapter before issue 35 it counts what the old code let through (it then uses what that code had: the
splitter's own embeddings, no StoredVectors). A few examples persist a store and reopen it in a fresh process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager
from langchain_core.indexing import aindex as langchain_aindex
from langchain_core.indexing import index as langchain_index
from langchain_core.load import dumpd, load
from langchain_text_splitters import (
    CharacterTextSplitter,
    MarkdownHeaderTextSplitter,
    MarkdownTextSplitter,
    RecursiveCharacterTextSplitter,
)

import langchain_jinav3
from jinav3 import SEAL_KEY, Embedder, InvalidInputError
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter, aindex, index

from .conftest import DIMS
from .stores import Opened, Record, open_store

retrievers = pytest.importorskip("langchain_classic.retrievers")
compressors = pytest.importorskip("langchain_classic.retrievers.document_compressors")
transformers = pytest.importorskip("langchain_community.document_transformers")
sql_manager = pytest.importorskip("langchain_classic.indexes")
pytest.importorskip("langchain_chroma")

#: The adapter before issue 35 had neither: the fuzzer then composes what that code offered.
SEALED = "strict_late_chunking" in JinaV3Embeddings.model_fields
REPORT = os.environ.get("JINAV3_FUZZ_REPORT")
LINES = ["# Berlin", "Berlin is big.", "It has a famous wall.", "## History", "The wall fell in 1989.",
         "# China", "China is large.", "Yes.", "It has a famous wall."]
JOINTS = [" ", "\n", "\n\n"]


# -- the catalogue -----------------------------------------------------------------------------------------------------
def boundaries(name: str, minilm: Path | None) -> Any:
    """The chunker our splitter takes its boundaries from."""
    if name in ("sentences", "paragraphs"):
        return name
    if name == "recursive":
        return RecursiveCharacterTextSplitter(chunk_size=40, chunk_overlap=10)
    if name == "character":
        return CharacterTextSplitter(separator=" ", chunk_size=30, chunk_overlap=0)
    if name == "markdown":
        return MarkdownTextSplitter(chunk_size=50, chunk_overlap=0)
    return _sentence_transformers(str(minilm)) if minilm else "sentences"


_LOADED: dict[str, Any] = {}


def _sentence_transformers(folder: str) -> Any:
    """SentenceTransformersTokenTextSplitter on the installed MiniLM (loaded once: it takes seconds)."""
    if folder not in _LOADED:
        from langchain_text_splitters import SentenceTransformersTokenTextSplitter

        _LOADED[folder] = SentenceTransformersTokenTextSplitter(model_name=folder, tokens_per_chunk=12,
                                                                 chunk_overlap=0)
    return _LOADED[folder]


def before(name: str, documents: list[Document]) -> list[Document]:
    """A LangChain step on the source documents; every document it makes gets its own ``source``."""
    if name == "none":
        made = documents
    elif name == "markdown_headers":
        header = MarkdownHeaderTextSplitter([("#", "h1"), ("##", "h2")])
        made = [Document(page_content=d.page_content, metadata={**doc.metadata, **d.metadata})
                for doc in documents for d in header.split_text(doc.page_content)]
    elif name == "recursive":
        made = RecursiveCharacterTextSplitter(chunk_size=60, chunk_overlap=0).split_documents(documents)
    else:
        made = list(transformers.LongContextReorder().transform_documents(documents))
    return [Document(page_content=d.page_content, metadata={**d.metadata, "source": f"{d.metadata['origin']}/{i}"})
            for i, d in enumerate(made) if d.page_content.strip()]


def after(name: str, chunks: list[Document], splitter: JinaV3LateChunkingSplitter) -> list[Document]:
    """A LangChain step on our chunks, before the store."""
    if name == "none":
        return chunks
    if name == "reorder":
        return list(transformers.LongContextReorder().transform_documents(chunks))
    if name == "metadata_edit":
        for chunk in chunks:
            chunk.metadata["lang"] = "en"
        return chunks
    if name == "metadata_replaced":  # e.g. ParentDocumentRetriever's child_metadata_fields
        for chunk in chunks:
            chunk.metadata = {k: chunk.metadata[k] for k in ("source", "start_index")}
        return chunks
    if name == "resplit_recursive":
        return RecursiveCharacterTextSplitter(chunk_size=12, chunk_overlap=0).split_documents(chunks)
    if name == "resplit_character":
        return CharacterTextSplitter(separator=" ", chunk_size=8, chunk_overlap=0).split_documents(chunks)
    if name == "json":
        return [load(dumpd(c), allowed_objects="core") for c in chunks]
    if name == "rebuilt":
        return [Document(page_content=c.page_content, metadata=c.metadata, id=c.id) for c in chunks]
    return splitter.split_documents(chunks)  # ours again


@dataclass
class Pipeline:
    documents: list[str]
    before: str
    chunker: str
    after: str
    write: str
    store: str
    edits: list[tuple[str, int, str]]
    query: str
    asynchronous: bool
    records_sql: bool


pipelines = st.builds(
    Pipeline,
    documents=st.lists(st.lists(st.tuples(st.sampled_from(LINES), st.sampled_from(JOINTS)), min_size=1, max_size=7)
                       .map(lambda parts: "".join(a + b for a, b in parts).strip()), min_size=1, max_size=3),
    before=st.sampled_from(["none", "none", "markdown_headers", "recursive", "reorder"]),
    chunker=st.sampled_from(["sentences", "sentences", "paragraphs", "recursive", "recursive", "character",
                             "markdown", "st_tokens"]),
    after=st.sampled_from(["none", "none", "none", "none", "reorder", "metadata_edit", "metadata_replaced",
                           "resplit_recursive", "resplit_character", "json", "rebuilt", "ours_again"]),
    write=st.sampled_from(["add", "add", "index", "index", "langchain_index"]),
    store=st.sampled_from(["memory", "qdrant", "chroma"]),
    edits=st.lists(st.tuples(st.sampled_from(["edit", "delete", "add"]), st.integers(0, 9), st.sampled_from(LINES)),
                   max_size=2),
    query=st.sampled_from(["none", "redundant", "redundant_stored", "filter", "filter_stored", "ensemble",
                           "ensemble"]),
    asynchronous=st.booleans(),
    records_sql=st.booleans(),
)


# -- the property ------------------------------------------------------------------------------------------------------
def violations(embedder: Embedder, current: dict[str, str], records: dict[str, Record]) -> list[str]:
    """What in the store is not a fresh late chunking of its own span in its own current document."""
    found: list[str] = []
    spans: dict[str, set[tuple[int, int]]] = {}
    for key, (text, metadata, _vector) in records.items():
        source, start = metadata.get("source"), metadata.get("start_index")
        document = current.get(source) if isinstance(source, str) else None
        if document is None or not isinstance(start, int) or document[start:start + len(text)] != text:
            found.append(f"{key}: {text[:30]!r} is not a span of a current document (source {source!r})")
            continue
        spans.setdefault(source, set()).add((start, start + len(text)))
    references: dict[tuple[str, int, int], np.ndarray] = {}
    for source, places in spans.items():
        for chunk in embedder.late_chunk(current[source], spans=sorted(places), task="retrieval.passage",
                                         dimensions=DIMS):
            references[(source, chunk.start, chunk.end)] = chunk.embedding
    for key, (text, metadata, vector) in records.items():
        place = (metadata.get("source"), metadata.get("start_index"), (metadata.get("start_index") or 0) + len(text))
        if place in references:
            gap = float(np.abs(np.asarray(vector, dtype=np.float64) - references[place]).max())
            if gap > 1e-5:
                found.append(f"{key}: {text[:30]!r} stored {gap:.3g} away from its late chunking")
    return found


def query_violations(found: list[Document], records: dict[str, Record]) -> list[str]:
    """A filter's vectors that are not the stored ones."""
    stored = {(m.get("source"), m.get("start_index"), t): v for t, m, v in records.values()}
    bad = []
    for document in found:
        vector = getattr(document, "state", {}).get("embedded_doc")
        place = (document.metadata.get("source"), document.metadata.get("start_index"), document.page_content)
        if vector is None or place not in stored or np.abs(np.asarray(vector) - stored[place]).max() > 1e-5:
            bad.append(f"query: {document.page_content[:30]!r} compared with a vector that is not the stored one")
    return bad


@dataclass
class Run:
    """One pipeline's run: the corpus, the store, what happened."""

    pipeline: Pipeline
    fp32: JinaV3Embeddings
    folder: Path
    minilm: Path | None
    corpus: dict[str, str] = field(default_factory=dict)
    outcome: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True)
        self.splitter = JinaV3LateChunkingSplitter(self.fp32, boundaries(self.pipeline.chunker, self.minilm),
                                                   add_start_index=True)
        self.embeddings = self.splitter.store_embeddings() if SEALED else self.fp32
        self.opened: Opened = open_store(self.pipeline.store, self.embeddings, self.folder, DIMS)
        namespace = f"fuzz-{uuid.uuid4().hex}"
        sql = self.pipeline.records_sql
        self.manager = (sql_manager.SQLRecordManager(
            namespace, db_url=f"sqlite+aiosqlite:///{self.folder / 'r.db'}" if self.pipeline.asynchronous
            else f"sqlite:///{self.folder / 'r.db'}", async_mode=self.pipeline.asynchronous)
            if sql else InMemoryRecordManager(namespace))

    async def prepare(self) -> None:
        if self.pipeline.asynchronous:
            await self.manager.acreate_schema()
        else:
            self.manager.create_schema()

    def sources(self) -> list[Document]:
        documents = [Document(page_content=text, metadata={"origin": origin}) for origin, text in self.corpus.items()]
        return before(self.pipeline.before, documents)

    async def chunks(self, documents: list[Document]) -> list[Document]:
        if self.pipeline.asynchronous:
            made = list(await self.splitter.atransform_documents(documents))
        else:
            made = self.splitter.split_documents(documents)
        return after(self.pipeline.after, made, self.splitter)

    async def write(self, chunks: list[Document]) -> None:
        store, kind, asynchronous = self.opened.store, self.pipeline.write, self.pipeline.asynchronous
        if kind == "add":
            await store.aadd_documents(chunks) if asynchronous else store.add_documents(chunks)
        elif kind == "index" and asynchronous:
            await aindex(chunks, self.manager, store, cleanup="full")
        elif kind == "index":
            index(chunks, self.manager, store, cleanup="full")
        elif asynchronous:
            await langchain_aindex(chunks, self.manager, store, cleanup="full", key_encoder="sha256")
        else:
            langchain_index(chunks, self.manager, store, cleanup="full", key_encoder="sha256")

    async def step(self, current: dict[str, str]) -> None:
        """One sync of the corpus; the property after it."""
        before_step = self.opened.records()
        documents = self.sources()
        try:
            await self.write(await self.chunks(documents))
        except InvalidInputError as error:
            self.outcome.append(f"refused: {type(error).__name__}: {str(error)[:70]}")
            if self.opened.records().keys() != before_step.keys():
                self.outcome.append("violation: a refused step changed the store")
            return
        self.outcome.append("written")
        texts = {d.metadata["source"]: d.page_content for d in documents}
        if self.pipeline.write == "add":
            current.update(texts)
        else:
            current.clear()
            current.update(texts)
        self.outcome += [f"violation: {v}" for v in violations(self.fp32.core, current, self.opened.records())]

    async def query(self) -> None:
        kind = self.pipeline.query
        if kind == "none" or not self.opened.records():
            return
        if kind == "ensemble":
            await self.fuse()
            return
        steps: list[Any] = [langchain_jinav3.StoredVectors(self.opened.store)] if kind.endswith("_stored") and \
            SEALED else []
        if kind.startswith("redundant"):
            steps.append(transformers.EmbeddingsRedundantFilter(embeddings=self.embeddings,
                                                                similarity_threshold=0.9999))
        else:
            steps.append(compressors.EmbeddingsFilter(embeddings=self.embeddings, similarity_threshold=-1.0))
        retriever = retrievers.ContextualCompressionRetriever(
            base_compressor=compressors.DocumentCompressorPipeline(transformers=steps),
            base_retriever=self.opened.store.as_retriever(search_kwargs={"k": 6}))
        try:
            found = await retriever.ainvoke("Which wall?") if self.pipeline.asynchronous else \
                retriever.invoke("Which wall?")
        except InvalidInputError as error:
            self.outcome.append(f"query refused: {type(error).__name__}")
            return
        self.outcome.append("query answered")
        self.outcome += [f"violation: {v}" for v in query_violations(found, self.opened.records())]

    async def fuse(self) -> None:
        """EnsembleRetriever over the store twice: every chunk the store returns must survive its deduplication
        (by the seal; the code before issue 35 had none, so LangChain's default, page_content, is what it got)."""
        base = self.opened.store.as_retriever(search_kwargs={"k": 6})
        fused = retrievers.EnsembleRetriever(retrievers=[base, base], id_key=SEAL_KEY if SEALED else None)
        asynchronous = self.pipeline.asynchronous
        direct = await base.ainvoke("Which wall?") if asynchronous else base.invoke("Which wall?")
        kept = await fused.ainvoke("Which wall?") if asynchronous else fused.invoke("Which wall?")
        self.outcome.append("query answered")

        def places(found: list[Document]) -> set[tuple[Any, ...]]:
            return {(d.metadata.get("source"), d.metadata.get("start_index"), d.page_content) for d in found}

        lost = places(direct) - places(kept)
        self.outcome += [f"violation: query: EnsembleRetriever dropped {text[:30]!r} of {source}"
                         for source, _, text in sorted(lost, key=str)]

    async def run(self) -> None:
        try:
            await self.sync_and_query()
        finally:
            if self.pipeline.records_sql and self.pipeline.asynchronous:
                await self.manager.engine.dispose()  # before asyncio.run closes the loop

    async def sync_and_query(self) -> None:
        await self.prepare()
        self.corpus = {f"doc{i}": text for i, text in enumerate(self.pipeline.documents)}
        current: dict[str, str] = {}
        await self.step(current)
        edits = self.pipeline.edits if self.pipeline.write != "add" else \
            [e for e in self.pipeline.edits if e[0] == "add"][:1]
        for number, (kind, pick, line) in enumerate(edits):
            origins = sorted(self.corpus)
            if kind == "add" or not origins:
                self.corpus[f"new{number}"] = line
            elif kind == "delete":
                del self.corpus[origins[pick % len(origins)]]
            else:
                origin = origins[pick % len(origins)]
                self.corpus[origin] = f"{self.corpus[origin]} {line}"
            if self.pipeline.write == "add":  # a plain store has no sync: only the new document is added
                new = {f"new{number}": self.corpus[f"new{number}"]}
                self.corpus, kept = new, self.corpus
                await self.step(current)
                self.corpus = kept
            else:
                await self.step(current)
        await self.query()


@pytest.fixture(scope="module")
def minilm() -> Path | None:
    from jinav3.model.choice import fallback_model_dir

    return fallback_model_dir()


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pipeline=pipelines)
def test_every_stored_vector_is_a_fresh_late_chunking_or_the_pipeline_is_refused(tiny_model, tmp_path, minilm,
                                                                                  pipeline):
    fp32 = JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)
    run = Run(pipeline, fp32, tmp_path / uuid.uuid4().hex, minilm)
    try:
        asyncio.run(run.run())
    finally:
        run.opened.close()
    if REPORT:
        with open(REPORT, "a") as report:
            report.write(json.dumps({"pipeline": pipeline.__dict__, "outcome": run.outcome}) + "\n")
        return
    assert not [o for o in run.outcome if o.startswith("violation")], (pipeline, run.outcome)


# -- persist, then reopen in a fresh process ---------------------------------------------------------------------------
REOPEN = """
import json, sys
from langchain_core.documents import Document
from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter
from tests.langchain_adapter.stores import open_store
from pathlib import Path
model, kind, folder, text = sys.argv[1:5]
fp32 = JinaV3Embeddings(model=model, device="cpu", dtype="float32", dimensions=16)
splitter = JinaV3LateChunkingSplitter(fp32, add_start_index=True)
opened = open_store(kind, splitter.store_embeddings(), Path(folder), 16)
outcome = []
try:
    opened.store.add_documents([Document(page_content="A plain note.", metadata={"source": "plain"})])
except ValueError as error:
    outcome.append(type(error).__name__)
opened.store.add_documents(splitter.split_documents([Document(page_content=text, metadata={"source": "later"})]))
opened.close()
print(json.dumps(outcome))
"""


@pytest.mark.parametrize("kind", ["qdrant", "chroma"])
def test_a_store_reopened_in_a_fresh_process_stays_exact(tiny_model, tiny_fp32, tmp_path, kind):
    """Persisted chunks read back exactly in a fresh process, which adds a document through the reopened store:
    its chunks are exact, a plain text is refused by the strict store embeddings."""
    fp32 = JinaV3Embeddings(model=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)
    splitter = JinaV3LateChunkingSplitter(fp32, add_start_index=True)
    first = "Berlin is big. It has a famous wall."
    opened = open_store(kind, splitter.store_embeddings(), tmp_path, DIMS)
    opened.store.add_documents(splitter.split_documents([Document(page_content=first, metadata={"source": "first"})]))
    opened.close()
    del opened
    later = "China is large. It has a famous wall."
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", REOPEN, tiny_model, kind, str(tmp_path), later], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["LateChunkingRequiredError"]
    reopened = open_store(kind, fp32, tmp_path, DIMS)
    try:
        records = reopened.records()
        assert len(records) == 4
        assert violations(tiny_fp32, {"first": first, "later": later}, records) == []
    finally:
        reopened.close()
