"""examples/haystack_rag.py with ``--qdrant``: qdrant-haystack in local mode stores the late-chunked vectors, and
a fresh process answers queries from the persisted index."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest


def test_persist_then_query_from_a_fresh_process(tiny_checkpoint, tiny_embedder, tmp_path, examples_qdrant):
    pytest.importorskip("haystack_integrations.document_stores.qdrant")
    path = tmp_path / "qdrant"
    options = ["--model", str(tiny_checkpoint), "--dimensions", "16", "--top", "2", "--qdrant", str(path)]
    first = examples_qdrant.run("haystack_rag", *options, "Which airport replaced Tegel?")
    assert "in Qdrant at" in first and first.count(".txt[") == 2
    second = examples_qdrant.run("haystack_rag", *options, "Which airport replaced Tegel?")
    assert "opened" in second and second.count(".txt[") == 2
    stored = defaultdict(list)
    for point in examples_qdrant.points(path):
        meta, text = point.payload["meta"], point.payload["content"]
        start = meta["split_idx_start"]
        stored[Path(meta["file_path"]).name].append((start, start + len(text), point.vector))
    examples_qdrant.check(tiny_embedder, stored, 16)
