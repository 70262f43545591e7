"""examples/haystack_rag.py with ``--qdrant``: qdrant-haystack in local mode stores the late-chunked vectors, and
a fresh process answers queries from the persisted index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "haystack_rag.py"
CORPUS = EXAMPLE.parent / "corpus"


def run(*argv: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLE), *argv], capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "HAYSTACK_TELEMETRY_ENABLED": "False"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_persist_then_query_from_a_fresh_process(tiny_checkpoint, tiny_embedder, tmp_path):
    qdrant_client = pytest.importorskip("qdrant_client")
    pytest.importorskip("haystack_integrations.document_stores.qdrant")
    path = tmp_path / "qdrant"
    options = ["--model", str(tiny_checkpoint), "--dimensions", "16", "--top", "2", "--qdrant", str(path)]
    first = run(*options, "Which airport replaced Tegel?")
    assert "in Qdrant at" in first and first.count(".txt[") == 2
    second = run(*options, "Which airport replaced Tegel?")
    assert "opened" in second and second.count(".txt[") == 2

    client = qdrant_client.QdrantClient(path=str(path))
    points = client.scroll("jinav3_example", limit=1000, with_vectors=True)[0]
    client.close()
    for file in CORPUS.glob("*.txt"):
        own = sorted((p for p in points if Path(p.payload["meta"]["file_path"]).name == file.name),
                     key=lambda p: p.payload["meta"]["split_idx_start"])
        starts = [p.payload["meta"]["split_idx_start"] for p in own]
        spans = [(start, start + len(p.payload["content"])) for start, p in zip(starts, own, strict=True)]
        truth = tiny_embedder.late_chunk(file.read_text(encoding="utf-8"), spans=spans, task="retrieval.passage",
                                         dimensions=16)
        np.testing.assert_allclose([p.vector for p in own], [c.embedding for c in truth], atol=1e-5)
