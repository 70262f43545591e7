"""A composition fuzzer (issue 35): random Haystack pipelines built from Haystack's own components around ours, run
with Pipeline.run or Pipeline.run_async (Haystack 3 merged AsyncPipeline into Pipeline) into a real store, then
edited and deleted through.

Property: after every run, every vector in the store is the fp32 late chunking of its own span in its own current
document (computed independently with the core; <= 1e-5), or the run raised and the store is as it was before.
Catalogue: DocumentSplitter (word, period, passage, line; overlaps), RecursiveDocumentSplitter (word, char),
MarkdownHeaderSplitter, HierarchicalDocumentSplitter, DocumentCleaner, DocumentPreprocessor, a metadata-only
tagger (a user's own component: Haystack ships none that needs no LLM or extra package), JinaV3LateChunkingSplitter
(own chunkers or a DocumentSplitter), JinaV3DocumentEmbedder (late chunking, with or without source_documents;
plain, strict, with or without overwrite), then JinaV3DocumentWriter or Haystack's DocumentWriter, into
InMemoryDocumentStore, QdrantDocumentStore (local, on disk) or ChromaDocumentStore (persistent).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from haystack import Document, Pipeline, component
from haystack.components.preprocessors import (
    DocumentCleaner,
    DocumentPreprocessor,
    DocumentSplitter,
    HierarchicalDocumentSplitter,
    MarkdownHeaderSplitter,
    RecursiveDocumentSplitter,
)
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from haystack_integrations.components.writers.jinav3 import JinaV3DocumentWriter
from jinav3 import SEAL_KEY, Embedder, InvalidInputError, Seal
from jinav3.late_chunking.seal import fingerprint

DIMS = 16
PIECES = ["Berlin", "is", "big.", "It", "has", "a", "wall.", "Kyoto", "was", "old!", "Why?", " ", "  ", "\n", "\n\n",
          "émigré", "東京", "# Title\n", "## Part\n"]
SPLITTING = {"DocumentSplitter", "RecursiveDocumentSplitter", "MarkdownHeaderSplitter", "HierarchicalDocumentSplitter",
             "DocumentPreprocessor", "JinaV3LateChunkingSplitter"}
OURS = {"JinaV3LateChunkingSplitter", "LateEmbedder", "PlainEmbedder"}
LATE = {"JinaV3LateChunkingSplitter", "LateEmbedder"}
TALLY: Counter[str] = Counter()
MESSAGES: dict[str, list[str]] = {}
#: Set JINAV3_FUZZ_COUNT_ONLY=1 to count the pipelines that break the property instead of failing on the first one
#: (how the fuzzer was run against the adapter from before seals, see the issue 35 note).
COUNT_ONLY = os.environ.get("JINAV3_FUZZ_COUNT_ONLY") == "1"


@component
class MetaTagger:
    """A metadata-only transform, as users write them: new Documents with one more meta field."""

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        return {"documents": [Document(content=d.content, embedding=d.embedding, meta={**d.meta, "lang": "en"})
                              for d in documents]}


texts = st.lists(st.sampled_from(PIECES), min_size=3, max_size=24).map(" ".join).filter(str.strip)
lengths = st.integers(1, 5).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1)))
ours = st.one_of(
    st.tuples(st.just("JinaV3LateChunkingSplitter"), st.sampled_from(["sentences", "tokens", "word", "period"])),
    st.tuples(st.just("LateEmbedder"), st.booleans()),
    st.tuples(st.just("PlainEmbedder"), st.booleans()),
)
splitters = st.one_of(
    st.tuples(st.just("DocumentSplitter"), st.tuples(st.sampled_from(["word", "period", "passage", "line"]), lengths)),
    st.tuples(st.just("RecursiveDocumentSplitter"), st.tuples(st.sampled_from(["word", "char"]), lengths)),
    st.tuples(st.just("MarkdownHeaderSplitter"), st.just(None)),
    st.tuples(st.just("HierarchicalDocumentSplitter"), st.sampled_from([(6, 3), (4,)])),
    st.tuples(st.just("DocumentPreprocessor"), lengths),
)
transforms = st.one_of(
    st.tuples(st.just("DocumentCleaner"), st.tuples(st.booleans(), st.booleans())),
    st.tuples(st.just("MetaTagger"), st.just(None)),
)
stage = st.one_of(splitters, transforms, ours)
# the shape users build (transforms, a splitter, transforms, ours), with any stage anywhere in it
one = st.builds(lambda x: [x], stage)
pipelines = st.tuples(st.one_of(st.just([]), st.builds(lambda x: [x], transforms), one),
                      st.one_of(st.builds(lambda x: [x], splitters), st.just([])),
                      st.one_of(st.builds(lambda x: [x], transforms), one, st.lists(stage, max_size=2)),
                      st.one_of(ours, ours, stage)).map(lambda t: [*t[0], *t[1], *t[2], t[3]])

@dataclass
class Case:
    stages: list[tuple[str, Any]]
    writer: str
    store: str
    run_async: bool
    then: str


cases = st.builds(Case, stages=pipelines, writer=st.sampled_from(["ours", "haystack"]),
                  store=st.sampled_from(["memory", "qdrant", "chroma"]), run_async=st.booleans(),
                  then=st.sampled_from(["nothing", "edit", "delete"]))


def make_stage(kind: str, params: Any, fp32: dict[str, Any], late: bool) -> Any:
    if kind == "DocumentSplitter":
        by, (length, overlap) = params
        return DocumentSplitter(split_by=by, split_length=length, split_overlap=overlap)
    if kind == "RecursiveDocumentSplitter":
        unit, (length, overlap) = params
        scale = 8 if unit == "char" else 1
        return RecursiveDocumentSplitter(split_length=length * scale, split_overlap=overlap * scale, split_unit=unit,
                                         separators=["\n\n", "\n", ".", " "])
    if kind == "MarkdownHeaderSplitter":
        return MarkdownHeaderSplitter()
    if kind == "HierarchicalDocumentSplitter":
        return HierarchicalDocumentSplitter(block_sizes=set(params), split_overlap=0, split_by="word")
    if kind == "DocumentCleaner":
        return DocumentCleaner(remove_extra_whitespaces=params[0], remove_empty_lines=params[1])
    if kind == "DocumentPreprocessor":
        return DocumentPreprocessor(split_by="word", split_length=params[0], split_overlap=params[1])
    if kind == "MetaTagger":
        return MetaTagger()
    if kind == "JinaV3LateChunkingSplitter":
        if params in ("sentences", "tokens"):
            return JinaV3LateChunkingSplitter(**fp32, chunker=params, chunk_size=6)
        return JinaV3LateChunkingSplitter(**fp32, document_splitter=DocumentSplitter(split_by=params, split_length=2))
    if kind == "LateEmbedder":
        return JinaV3DocumentEmbedder(**fp32, late_chunking=True)
    # a plain embedder in a late-chunking index is strict; in a plain pipeline it makes plain vectors
    return JinaV3DocumentEmbedder(**fp32, overwrite=params, strict_late_chunking=late)


def make_store(kind: str, folder: str) -> Any:
    if kind == "qdrant":
        from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

        return QdrantDocumentStore(path=folder, embedding_dim=DIMS, return_embedding=True, progress_bar=False)
    if kind == "chroma":
        from haystack_integrations.document_stores.chroma import ChromaDocumentStore

        return ChromaDocumentStore(persist_path=folder, collection_name=f"c{uuid.uuid4().hex}",
                                   distance_function="cosine")
    return InMemoryDocumentStore()


def build(case: Case, store: Any, fp32: dict[str, Any]) -> tuple[Any, dict[str, Any], str | None]:
    """The pipeline, the run data besides the documents, and the stage whose output is each chunk's document."""
    late = any(kind in LATE for kind, _ in case.stages)
    pipeline = Pipeline()
    names = [f"s{i}_{kind}" for i, (kind, _) in enumerate(case.stages)]
    for name, (kind, params) in zip(names, case.stages, strict=True):
        pipeline.add_component(name, make_stage(kind, params, fp32, late))
    for a, b in itertools.pairwise(names):
        pipeline.connect(f"{a}.documents", f"{b}.documents")
    first_split = next((i for i, (kind, _) in enumerate(case.stages) if kind in SPLITTING), None)
    reference = None if not first_split else names[first_split - 1]
    extra: dict[str, Any] = {}
    for i, (name, (kind, wants_sources)) in enumerate(zip(names, case.stages, strict=True)):
        if kind == "LateEmbedder" and wants_sources and first_split is not None and first_split < i:
            if reference is None:
                extra[name] = "source_documents"
            else:
                pipeline.connect(f"{reference}.documents", f"{name}.source_documents")
    if case.writer == "ours" or case.stages[-1][0] not in OURS:
        writer = JinaV3DocumentWriter(store, source_key="file_path")
    else:
        writer = DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE)
    pipeline.add_component("writer", writer)
    pipeline.connect(f"{names[-1]}.documents", "writer.documents")
    return pipeline, extra, reference


def snapshot(store: Any) -> dict[str, Any]:
    return {d.id: (d.content, vector(d) and np.float32(vector(d)).tobytes(), d.meta.get(SEAL_KEY))
            for d in store.filter_documents()}


def vector(doc: Document) -> list[float] | None:
    """A stored Document's vector (Qdrant gives an unembedded Document an empty dict of named vectors)."""
    return doc.embedding if isinstance(doc.embedding, list) and doc.embedding else None


def run(pipeline: Any, case: Case, docs: list[Document], extra: dict[str, Any], delete: list[str] | None
        ) -> dict[str, list[str]]:
    """Run; returns the versions of each file's whole document in the run (the input, and every stage's output
    Documents that are not chunks, e.g. after a cleaner): a stored chunk must be exact in one of them."""
    names = list(pipeline.graph.nodes)
    data: dict[str, Any] = {names[0]: {"documents": docs}}
    for name in extra:
        data.setdefault(name, {})["source_documents"] = docs
    if delete:
        data["writer"] = {"delete_sources": delete}
    stages = set(names) - {"writer"}
    if case.run_async:
        result = asyncio.run(pipeline.run_async(data, include_outputs_from=stages))
    else:
        result = pipeline.run(data, include_outputs_from=stages)
    versions: dict[str, list[str]] = {d.meta["file_path"]: [d.content or ""] for d in docs}
    for name in names:
        for doc in result.get(name, {}).get("documents", []):
            if doc.meta.get("source_id") is None and doc.content not in versions[doc.meta["file_path"]]:
                versions[doc.meta["file_path"]].append(doc.content or "")
    return versions


def place(doc: Document, versions: list[str]) -> tuple[str, tuple[int, int]]:
    """Which version of its document a stored chunk belongs to, and its span there: its seal says so; without one
    (COUNT_ONLY against an adapter from before seals) the last version holding its text, at its split offset when
    the text is there, else at the first occurrence."""
    content = doc.content or ""
    if SEAL_KEY in doc.meta:
        seal = Seal.decode(doc.meta[SEAL_KEY])
        found = [text for text in versions if fingerprint(text) == seal.document]
        assert found, f"{doc.id} was late-chunked in a text that is no version of its document"
        return found[0], (seal.start, seal.end)
    start = doc.meta.get("split_idx_start")
    for text in reversed(versions):
        if isinstance(start, int) and text[start : start + len(content)] == content:
            return text, (start, start + len(content))
        if content in text:
            return text, (text.find(content), text.find(content) + len(content))
    raise AssertionError(f"{doc.id} ({content[:30]!r}) is in no version of its document")


def check_store(store: Any, current: dict[str, list[str]], late: bool, core: Embedder) -> int:
    """The property; returns how many vectors it checked."""
    everything = store.filter_documents()
    stored = [d for d in everything if vector(d) is not None]
    assert {d.meta["file_path"] for d in everything} <= set(current)  # deleted sources are gone
    if not late:
        assert not any(SEAL_KEY in d.meta for d in stored)
        return 0
    groups: dict[tuple[str, str], list[tuple[Document, tuple[int, int]]]] = {}
    for doc in stored:
        text, span = place(doc, current[doc.meta["file_path"]])
        assert text[span[0] : span[1]] == doc.content
        groups.setdefault((doc.meta["file_path"], text), []).append((doc, span))
    for (_, text), members in groups.items():
        truth = core.late_chunk(text, spans=[span for _, span in members], task="retrieval.passage",
                                dimensions=DIMS)
        np.testing.assert_allclose([vector(d) for d, _ in members], [c.embedding for c in truth], atol=1e-5)
    if not COUNT_ONLY:
        assert all(SEAL_KEY in d.meta for d in stored)  # a late-chunking index holds sealed vectors only
    return len(stored)


def attempt(step: str, store: Any, go: Any) -> dict[str, list[str]] | None:
    """Run one step; a refusal must leave the store as it was."""
    before = snapshot(store)
    try:
        current = go()
    except Exception as exc:  # any refusal counts, but the store must be untouched
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        TALLY[f"{step} refused: {type(cause).__name__}"] += 1
        MESSAGES.setdefault(type(cause).__name__, []).append(str(cause)[:300])
        if COUNT_ONLY and snapshot(store) != before:
            TALLY[f"{step}: REFUSED AFTER WRITING"] += 1
            return None
        assert snapshot(store) == before, f"{type(cause).__name__}: {cause} left the store changed"
        return None
    TALLY[f"{step} ran"] += 1
    return current


def re_embed_at_query_time(store: Any, fp32: dict[str, Any]) -> None:
    """Retrieved chunks handed to our embedder again (as a re-ranking step would) keep their stored vectors, or the
    embedder raises; it never makes a plain vector for a late-chunked chunk."""
    retrieved = [d for d in store.filter_documents() if vector(d) is not None]
    try:
        again = JinaV3DocumentEmbedder(**fp32).run(documents=retrieved)["documents"]
    except InvalidInputError as exc:
        TALLY[f"query-time re-embedding refused ({type(store).__name__})"] += 1
        MESSAGES.setdefault("query time", []).append(str(exc)[:400])
        return
    TALLY[f"query-time re-embedding kept the stored vectors ({type(store).__name__})"] += 1
    assert [np.float32(d.embedding).tobytes() for d in again] == [np.float32(vector(d)).tobytes() for d in retrieved]


def holds(step: str, check: Any) -> bool:
    """Check the property after a step that ran; COUNT_ONLY tallies a violation instead of failing."""
    try:
        TALLY["vectors checked"] += check()
    except AssertionError:
        if not COUNT_ONLY:
            raise
        TALLY[f"{step}: WRONG VECTORS STORED SILENTLY"] += 1
        return False
    return True


ISSUE_TEXT = "Berlin is big.  It has a wall.\n\nKyoto was old! Why?\n"
ISSUE_SPLIT = ("DocumentSplitter", ("word", (3, 0)))


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=cases, first=texts, second=texts)
# issue 35's Haystack case, always among the examples: a cleaner or DocumentPreprocessor before the late embedder
@example(case=Case([ISSUE_SPLIT, ("DocumentCleaner", (True, True)), ("LateEmbedder", False)], "ours", "memory", False,
                   "edit"), first=ISSUE_TEXT, second="Kyoto has temples.  Many visit.")
@example(case=Case([("DocumentPreprocessor", (3, 0)), ("LateEmbedder", False)], "haystack", "qdrant", False,
                   "nothing"), first=ISSUE_TEXT, second="Kyoto has temples.  Many visit.")
@example(case=Case([ISSUE_SPLIT, ("DocumentCleaner", (False, False)), ("LateEmbedder", True)], "ours", "chroma",
                   False, "delete"), first=ISSUE_TEXT, second="Kyoto has temples. Many visit.")
def test_every_stored_vector_is_exact_late_chunking_or_the_run_is_refused(tiny, tiny_fp32, case, first, second):
    fp32 = {**tiny, "backend_options": {"device": "cpu", "dtype": "float32"}, "dimensions": DIMS,
            "progress_bar": False}
    if case.store == "chroma" and case.stages[-1][0] not in OURS:
        case = replace(case, store="memory")  # Chroma would embed unembedded Documents itself (a model download)
    if case.run_async:
        # chroma-haystack's async methods need a Chroma server; Qdrant's local mode locks its folder to one client,
        # and the async one is a second client next to the sync one the check reads with
        case = replace(case, store="memory")
    folder = tempfile.mkdtemp(prefix="r10h-fuzz-")
    store = make_store(case.store, folder)
    try:
        pipeline, extra, _ = build(case, store, fp32)
        late = any(kind in LATE for kind, _ in case.stages)
        docs = [Document(content=first, meta={"file_path": "a.txt"}),
                Document(content=second, meta={"file_path": "b.txt"})]
        current = attempt("first run", store, lambda: run(pipeline, case, docs, extra, None))
        TALLY[f"{'late-chunking' if late else 'plain'} pipelines {'refused' if current is None else 'ran'}"] += 1
        if current is None:
            return
        if not holds("first run", lambda: check_store(store, current, late, tiny_fp32)):
            return
        if late:
            re_embed_at_query_time(store, fp32)
        if case.then == "nothing" or not isinstance(pipeline.get_component("writer"), JinaV3DocumentWriter):
            return
        if case.then == "edit":
            edited = [replace(docs[0], content=docs[0].content + " The wall fell."), docs[1]]
            edited = [Document(content=d.content, meta=d.meta) for d in edited]
            now = attempt("edit", store, lambda: run(pipeline, case, edited, extra, None))
        else:
            now = attempt("delete", store, lambda: run(pipeline, case, docs[:1], extra, ["b.txt"]))
            if now is not None:
                current.pop("b.txt")
        if now is not None:
            holds(case.then, lambda: check_store(store, {**current, **now}, late, tiny_fp32))
    finally:
        client = getattr(store, "_client", None)
        if client is not None and hasattr(client, "close"):
            client.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    print("\ncomposition fuzzer:", dict(sorted(TALLY.items())))
    for name, found in MESSAGES.items():
        print(name, *sorted(set(found))[:6], sep="\n  ")


RELOADED_RUN = """
import json, sys
from haystack import Document, Pipeline
spec = json.load(open(sys.argv[1]))
pipeline = Pipeline.loads(open(spec["yaml"]).read())
docs = [Document(content=text, meta={"file_path": name}) for name, text in spec["docs"].items()]
data = {spec["first"]: {"documents": docs}, "writer": {"delete_sources": spec["delete"]}}
if spec["sources"]:
    data[spec["sources"]] = {"source_documents": docs}
print(pipeline.run(data)["writer"])
"""


def forget_chroma_clients() -> None:
    """chromadb caches one client per folder and process; drop it so the folder is read afresh from disk."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


@pytest.mark.parametrize(("store_kind", "stages"), [
    ("qdrant", [("DocumentSplitter", ("word", (3, 1))), ("LateEmbedder", True)]),
    ("chroma", [("DocumentCleaner", (True, True)), ("JinaV3LateChunkingSplitter", "word")]),
    ("chroma", [("DocumentSplitter", ("word", (3, 0))), ("DocumentCleaner", (True, False)), ("LateEmbedder", True)]),
])
def test_a_persisted_pipeline_and_store_reloaded_in_a_fresh_process_stay_exact(tiny, tiny_fp32, tmp_path, store_kind,
                                                                                stages):
    """Index, save the pipeline as YAML, close the store; a fresh process loads both, edits one file and deletes the
    other through JinaV3DocumentWriter; the store, reopened here, holds exactly the edited file's chunks."""
    import json
    import subprocess
    import sys

    fp32 = {**tiny, "backend_options": {"device": "cpu", "dtype": "float32"}, "dimensions": DIMS,
            "progress_bar": False}
    case = Case(stages=stages, writer="ours", store=store_kind, run_async=False, then="edit")
    store = make_store(store_kind, str(tmp_path / "store"))
    pipeline, _, reference = build(case, store, fp32)
    # single spaces: a cleaner after the splitter then only strips chunk edges, which source_documents undoes
    docs = [Document(content="Berlin is big. It has a wall. Kyoto was old! Why?\n", meta={"file_path": "a.txt"}),
            Document(content="Kyoto has temples. Many visit.\n", meta={"file_path": "b.txt"})]
    sources = next((name for name in pipeline.graph.nodes if name.endswith("LateEmbedder")), None)
    data = {next(iter(pipeline.graph.nodes)): {"documents": docs}}
    if sources:
        data[sources] = {"source_documents": docs}
    result = pipeline.run(data, include_outputs_from={reference} if reference else set())
    current = {d.meta["file_path"]: [d.content] for d in (result[reference]["documents"] if reference else docs)}
    check_store(store, current, True, tiny_fp32)
    (tmp_path / "pipeline.yaml").write_text(pipeline.dumps())
    collection = getattr(store, "_collection_name", None)
    if store_kind == "qdrant":
        store._client.close()
    del pipeline, store
    forget_chroma_clients()
    edited = {"a.txt": "Berlin is big. It had a wall until 1989. Kyoto was old!\n"}
    spec = {"yaml": str(tmp_path / "pipeline.yaml"), "docs": edited, "delete": ["b.txt"],
            "first": next(iter(data)), "sources": sources}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "HAYSTACK_TELEMETRY_ENABLED": "False"}
    done = subprocess.run([sys.executable, "-c", RELOADED_RUN, str(tmp_path / "spec.json")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if store_kind == "qdrant":
        reopened = make_store("qdrant", str(tmp_path / "store"))
    else:
        from haystack_integrations.document_stores.chroma import ChromaDocumentStore

        forget_chroma_clients()
        reopened = ChromaDocumentStore(persist_path=str(tmp_path / "store"), collection_name=collection,
                                       distance_function="cosine")
    reference_text = edited["a.txt"]
    if stages[0][0] == "DocumentCleaner":
        reference_text = DocumentCleaner(remove_extra_whitespaces=True, remove_empty_lines=True).run(
            documents=[Document(content=reference_text)])["documents"][0].content
    assert check_store(reopened, {"a.txt": [reference_text]}, True, tiny_fp32) > 0
