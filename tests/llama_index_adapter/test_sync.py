"""Keeping a store in sync: ``IngestionPipeline`` with a docstore and ``DocstoreStrategy.UPSERTS`` (or
``UPSERTS_AND_DELETE``), our node parser and embed model, over Hypothesis edit sequences (edit, delete, add, undo)
of documents full of repeated sentences and lines, with random splitter sizes. After every step each document in
the store holds exactly the late chunks of its current text: no stale, orphan or plain vector, in
``SimpleVectorStore`` and in Qdrant (local mode)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from llama_index.core import Document
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores import SimpleVectorStore

from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

from .conftest import DIMS

#: Each example runs several pipelines (seconds on a loaded machine): a failure is reported unshrunk.
SLOW_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
#: Repeats are the point: FAQ boilerplate, table rows, log lines and short answers occur many times per document.
LINES = ["Answer: see above.", "Yes.", "| 1 | 2 |", "ERROR disk full", "Berlin is big.", "The wall fell in 1989.",
         "Kyoto has old temples.", "Yes. Yes."]
texts = st.lists(st.sampled_from(LINES), min_size=1, max_size=14).flatmap(
    lambda lines: st.sampled_from([" ", "\n", "\n\n"]).map(lambda sep: sep.join(lines)))
#: One step on the input set {doc id: text}: ("edit", slot, text), ("delete", slot), ("add", text) or ("undo",).
steps = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 3), texts),
    st.tuples(st.just("delete"), st.integers(0, 3)),
    st.tuples(st.just("add"), texts),
    st.tuples(st.just("undo")),
)
CASES = {"examples": 0, "steps": 0}


@pytest.fixture(scope="module", autouse=True)
def count_cases():
    """How many generated cases ran (shown with -s; the closing note of the issue quotes it)."""
    yield
    print(f"\nLlamaIndex sync: {CASES['examples']} edit sequences, {CASES['steps']} pipeline runs checked")


def apply(history: list[dict[str, str]], step: tuple, added: int) -> dict[str, str]:
    """The next input set after ``step`` (``history[-1]`` is the current one; ``undo`` goes back one)."""
    current = dict(history[-1])
    ids = sorted(current)
    if step[0] == "undo":
        return dict(history[-2]) if len(history) > 1 else current
    if step[0] == "add":
        current[f"doc-{added}"] = step[1]
    elif ids and step[0] == "edit":
        current[ids[step[1] % len(ids)]] = step[2]
    elif ids and step[0] == "delete":
        del current[ids[step[1] % len(ids)]]
    return current


def simple_store():
    store = SimpleVectorStore()

    def stored() -> dict[str, list[list[float]]]:
        by_doc: dict[str, list[list[float]]] = {}
        for node_id, doc_id in store.data.text_id_to_ref_doc_id.items():
            by_doc.setdefault(doc_id, []).append(store.data.embedding_dict[node_id])
        return by_doc

    return store, stored


def qdrant_store():
    qdrant_client = pytest.importorskip("qdrant_client")
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    client = qdrant_client.QdrantClient(":memory:")
    store = QdrantVectorStore("sync", client=client)

    def stored() -> dict[str, list[list[float]]]:
        if not client.collection_exists("sync"):
            return {}
        by_doc: dict[str, list[list[float]]] = {}
        for point in client.scroll("sync", limit=10_000, with_vectors=True)[0]:
            by_doc.setdefault(point.payload["doc_id"], []).append(point.vector)
        return by_doc

    return store, stored


def assert_same_vectors(stored: list[list[float]], truth: list[np.ndarray], doc_id: str) -> None:
    """``stored`` is ``truth`` in some order (±1e-5): each true chunk matched once, nothing left over."""
    assert len(stored) == len(truth), f"{doc_id}: {len(stored)} vectors stored, {len(truth)} chunks"
    left = [np.asarray(v) for v in stored]
    for vector in truth:
        match = next((i for i, v in enumerate(left) if np.max(np.abs(v - vector)) <= 1e-5), None)
        assert match is not None, f"{doc_id}: a chunk of the current text has no stored vector (stale or plain)"
        left.pop(match)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=SLOW_PHASES)
@given(first=st.lists(texts, min_size=1, max_size=3), edits=st.lists(steps, min_size=2, max_size=5),
       chunk_size=st.integers(12, 48), overlap=st.integers(0, 8))
@pytest.mark.parametrize("strategy", [DocstoreStrategy.UPSERTS, DocstoreStrategy.UPSERTS_AND_DELETE])
@pytest.mark.parametrize("make_store", [simple_store, qdrant_store])
def test_every_stored_vector_is_a_late_chunk_of_its_documents_current_text(
    tiny_model, tiny_fp32, make_store, strategy, first, edits, chunk_size, overlap
):
    model = JinaV3Embedding(model_name=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)
    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=min(overlap, chunk_size // 2))
    parser = JinaV3LateChunkingNodeParser(embed_model=model, text_splitter=splitter)
    vector_store, stored = make_store()
    pipeline = IngestionPipeline(transformations=[parser, model], docstore=SimpleDocumentStore(),
                                 vector_store=vector_store, docstore_strategy=strategy, disable_cache=True)
    history = [{f"doc-{i}": text for i, text in enumerate(first)}]
    in_store: dict[str, str] = {}  # what the store must hold: UPSERTS never deletes, UPSERTS_AND_DELETE does
    CASES["examples"] += 1
    for number, step in enumerate([("start",), *edits]):
        if number:
            history.append(apply(history, step, added=len(first) + number))
        current = history[-1]
        pipeline.run(documents=[Document(text=text, id_=doc_id) for doc_id, text in current.items()])
        in_store = dict(current) if strategy == DocstoreStrategy.UPSERTS_AND_DELETE else {**in_store, **current}
        CASES["steps"] += 1
        by_doc = stored()
        assert set(by_doc) == set(in_store), f"after {step}: documents {sorted(by_doc)} stored, {sorted(in_store)}"
        for doc_id, text in in_store.items():
            fresh = parser.get_nodes_from_documents([Document(text=text, id_=doc_id)])
            spans = [(n.start_char_idx, n.end_char_idx) for n in fresh]
            truth = tiny_fp32.late_chunk(text, spans=spans, task="retrieval.passage", dimensions=DIMS)
            assert_same_vectors(by_doc[doc_id], [c.embedding for c in truth], f"after {step}, {doc_id}")
