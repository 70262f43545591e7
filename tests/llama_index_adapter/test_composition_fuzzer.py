"""A composition fuzzer: random LlamaIndex pipelines built from LlamaIndex's own components around ours.

Each example draws documents (repeated sentences, Unicode, whitespace), a run mode (``IngestionPipeline`` sync or
async, cache on or off, with a docstore that syncs edits and deletes; or ``VectorStoreIndex.from_documents``), a
store (in memory, Qdrant local on disk, Chroma persistent on disk), and a pipeline: optional LlamaIndex node parsers
and user transforms (a text cleaner, a metadata tagger) before our parser, our parser with a random splitter, and
optional components after it (node parsers, the cleaner, the tagger, our embed model strict or not, a plain embed
model). It runs the pipeline, then an edit (one document changed, one deleted) reopened from the store's folder.

Property, after every run: every vector in the store equals a fresh fp32 late chunking of its own span in its own
current document (<= 1e-5), or the run raised; a run that raised wrote nothing wrong (what the store holds is still
exact for the documents as they were), and a run that did not raise left every current document in the store.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import (
    HierarchicalNodeParser,
    MarkdownNodeParser,
    SentenceSplitter,
    SentenceWindowNodeParser,
)
from llama_index.core.schema import BaseNode, TransformComponent
from llama_index.core.storage.docstore import SimpleDocumentStore

from jinav3 import JinaV3Error
from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

from .conftest import DIMS
from .stores import assert_exact, close_store, open_store, stored

OUTCOMES: Counter[str] = Counter()
QUOTED = re.compile(r"'[^']*'")  # ids and texts in a refusal: counted together


@pytest.fixture(scope="module", autouse=True)
def report():
    """How many generated pipelines ran and how they ended (shown with -s; the issue's closing note quotes it)."""
    yield
    print(f"\nLlamaIndex composition fuzzer: {sum(OUTCOMES.values())} runs")
    for outcome, count in OUTCOMES.most_common():
        print(f"  {count:4d}  {outcome}")


class Clean(TransformComponent):
    """A user's text cleaner (collapses runs of spaces, strips the ends), changing nodes in place."""

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        for node in nodes:
            node.set_content(clean(node.get_content()))
        return nodes


class Tag(TransformComponent):
    """A user's metadata transform that needs no LLM: the number of words."""

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        for node in nodes:
            node.metadata["words"] = len(node.get_content().split())
        return nodes


def clean(text: str) -> str:
    return " ".join(part for part in text.split(" ") if part).strip()


SENTENCES = ["Berlin is big.", "Yes.", "Kyoto has old temples.", "Die Mauer fiel 1989.", "東京は大きい。",
             "| 1 | 2 |", "Answer: see above.", "Lyon  has silk.", "# Heading", "Ça va ?"]
texts = st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=8).flatmap(
    lambda parts: st.sampled_from([" ", "\n", "\n\n", "  "]).map(lambda sep: sep.join(parts)))

BEFORE = {
    "none": lambda: [],
    "window": lambda: [SentenceWindowNodeParser.from_defaults(window_size=1)],
    "sentence-splitter": lambda: [SentenceSplitter(chunk_size=12, chunk_overlap=0)],
    "markdown": lambda: [MarkdownNodeParser()],
    "hierarchical": lambda: [HierarchicalNodeParser.from_defaults(chunk_sizes=[48, 12], chunk_overlap=0)],
    "clean": lambda: [Clean()],
    "tag": lambda: [Tag()],
}
AFTER = {
    "none": lambda model: [],
    "sentence-splitter": lambda model: [SentenceSplitter(chunk_size=12, chunk_overlap=0)],
    "window": lambda model: [SentenceWindowNodeParser.from_defaults(window_size=1)],
    "hierarchical": lambda model: [HierarchicalNodeParser.from_defaults(chunk_sizes=[48, 12], chunk_overlap=0)],
    "clean": lambda model: [Clean()],
    "tag": lambda model: [Tag()],
    "our-embed": lambda model: [model],
    "plain-embed": lambda model: [MockEmbedding(embed_dim=DIMS)],
}
SPLITTERS = {
    "sentences": {"chunker": "sentences"},
    "tokens": {"chunker": "tokens", "chunk_size": 4, "chunk_overlap": 1},
    "sentence-splitter": {"text_splitter": SentenceSplitter(chunk_size=16, chunk_overlap=4)},
}


def expected_text(text: str, before: str) -> str:
    """The document text our parser late-chunks: a cleaner before it changes the document first."""
    return clean(text) if before == "clean" else text


class Run:
    """One example's pipeline, run once and then again after an edit and a delete (the same store, docstore and,
    for a pipeline, the same cache)."""

    def __init__(self, mode: str, transformations: list[Any], store: Any, model: JinaV3Embedding) -> None:
        self.mode, self.transformations, self.store, self.model = mode, transformations, store, model
        self.docstore = SimpleDocumentStore()
        self.index: VectorStoreIndex | None = None
        self.pipeline = None if mode == "index" else IngestionPipeline(
            transformations=transformations, vector_store=store, docstore=self.docstore,
            docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE, disable_cache=mode.endswith("no-cache"))

    def __call__(self, documents: list[Document], removed: list[str]) -> None:
        if self.pipeline is not None:  # UPSERTS_AND_DELETE: documents left out are deleted
            if self.mode.startswith("async"):
                asyncio.run(self.pipeline.arun(documents=documents))
            else:
                self.pipeline.run(documents=documents)
        elif self.index is None:
            context = StorageContext.from_defaults(vector_store=self.store, docstore=self.docstore)
            self.index = VectorStoreIndex.from_documents(documents, storage_context=context,
                                                         transformations=self.transformations, embed_model=self.model)
        else:
            self.index.refresh_ref_docs(documents)
            for doc_id in removed:
                self.index.delete_ref_doc(doc_id, delete_from_docstore=True)


def check(store: Any, docstore: Any, documents: dict[str, str], reference: Any) -> None:
    pairs = stored(store, docstore)
    assert_exact(pairs, documents, reference, DIMS)


@settings(max_examples=60, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    first=st.lists(texts, min_size=1, max_size=3),
    edit=texts,
    before=st.sampled_from(sorted(BEFORE)),
    splitter=st.sampled_from(sorted(SPLITTERS)),
    after=st.lists(st.sampled_from(sorted(AFTER)), max_size=2),
    strict=st.booleans(),
    mode=st.sampled_from(["index", "sync", "sync-no-cache", "async", "async-no-cache"]),
    kind=st.sampled_from(["memory", "qdrant", "chroma"]),
)
def test_random_compositions_store_exact_vectors_or_raise(tmp_path_factory, tiny_model, tiny_fp32, first, edit,
                                                          before, splitter, after, strict, mode, kind):
    if mode != "index" and kind == "memory":
        kind = "qdrant"  # SimpleVectorStore keeps no nodes for an IngestionPipeline to be checked against
    if mode.startswith("async") and kind == "qdrant":
        kind = "chroma"  # Qdrant's local mode allows one client per folder, and arun needs its async client
    folder = tmp_path_factory.mktemp("store")
    model = JinaV3Embedding(model_name=tiny_model, device="cpu", dtype="float32", dimensions=DIMS,
                            strict_late_chunking=strict)
    parser = JinaV3LateChunkingNodeParser(embed_model=model, **SPLITTERS[splitter])
    transformations = [*BEFORE[before](), parser, *[step for name in after for step in AFTER[name](model)]]
    store = open_store(kind, folder)
    runner = Run(mode, transformations, store, model)
    texts_now = {f"doc-{i}": text for i, text in enumerate(first)}
    previous: dict[str, str] | None = None
    try:
        for step in range(2):
            removed: list[str] = []
            if step == 1:  # an edit and a delete
                texts_now = dict(texts_now)
                texts_now["doc-0"] = edit
                if len(first) > 1:
                    removed = [f"doc-{len(first) - 1}"]
                    del texts_now[removed[0]]
            expected = {doc_id: expected_text(text, before) for doc_id, text in texts_now.items()}
            try:
                runner([Document(text=text, id_=doc_id) for doc_id, text in texts_now.items()], removed)
            except JinaV3Error as refusal:
                OUTCOMES[f"refused ({type(refusal).__name__}: {re.sub(QUOTED, '…', str(refusal))[:70]})"] += 1
                # nothing wrong was written: what the store holds is exact for the texts as they were
                check(store, runner.docstore, previous or expected, tiny_fp32)
                return
            OUTCOMES["exact"] += 1
            check(store, runner.docstore, expected, tiny_fp32)
            held = {node.ref_doc_id for node, _ in stored(store, runner.docstore)}
            assert held == {doc_id for doc_id, text in expected.items() if text.strip()}, "a document is missing"
            previous = expected
    finally:
        close_store(store)
