"""examples/llama_index_rag.py with ``--qdrant``: llama-index-vector-stores-qdrant in local mode stores the
late-chunked node vectors, and a fresh process answers queries from the persisted collection."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from .conftest import DIMS


def test_persist_then_query_from_a_fresh_process(tiny_model, tiny_embedder, tmp_path, examples_qdrant):
    pytest.importorskip("llama_index.vector_stores.qdrant")
    path = tmp_path / "qdrant"
    options = ["--model", tiny_model, "--dimensions", str(DIMS), "--top", "2", "--qdrant", str(path)]
    first = examples_qdrant.run("llama_index_rag", *options, "Where is Berlin?")
    assert "indexed" in first and first.count(".txt[") == 2
    second = examples_qdrant.run("llama_index_rag", *options, "Which airport replaced Tegel?")
    assert "opened" in second and second.count(".txt[") == 2
    stored = defaultdict(list)
    for point in examples_qdrant.points(path):
        node = json.loads(point.payload["_node_content"])
        stored[node["metadata"]["file_name"]].append((node["start_char_idx"], node["end_char_idx"], point.vector))
    examples_qdrant.check(tiny_embedder, stored, DIMS)
