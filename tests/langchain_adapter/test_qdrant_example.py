"""examples/langchain_rag.py with ``--qdrant``: langchain-qdrant in local mode stores the late-chunked vectors,
and a fresh process answers queries from the persisted collection."""

from __future__ import annotations

from collections import defaultdict

import pytest

from .conftest import DIMS


def test_persist_then_query_from_a_fresh_process(tiny_model, tiny_embedder, tmp_path, examples_qdrant):
    pytest.importorskip("langchain_qdrant")
    path = tmp_path / "qdrant"
    options = ["--model", tiny_model, "--dimensions", str(DIMS), "--top", "2", "--qdrant", str(path)]
    first = examples_qdrant.run("langchain_rag", *options, "Where is Berlin?")
    assert "stored" in first and first.count(".txt[") == 2
    second = examples_qdrant.run("langchain_rag", *options, "Which airport replaced Tegel?")
    assert "opened" in second and second.count(".txt[") == 2
    stored = defaultdict(list)
    for point in examples_qdrant.points(path):
        meta, text = point.payload["metadata"], point.payload["page_content"]
        stored[meta["source"]].append((meta["start_index"], meta["start_index"] + len(text), point.vector))
    examples_qdrant.check(tiny_embedder, stored, DIMS)
