"""examples/langchain_rag.py with ``--qdrant``: langchain-qdrant in local mode stores the late-chunked vectors,
and a fresh process answers queries from the persisted collection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import DIMS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_rag.py"
CORPUS = EXAMPLE.parent / "corpus"


def run(*argv: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLE), *argv], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_persist_then_query_from_a_fresh_process(tiny_model, tiny_embedder, tmp_path):
    qdrant_client = pytest.importorskip("qdrant_client")
    pytest.importorskip("langchain_qdrant")
    path = tmp_path / "qdrant"
    options = ["--model", tiny_model, "--dimensions", str(DIMS), "--top", "2", "--qdrant", str(path)]
    first = run(*options, "Where is Berlin?")
    assert "stored" in first and first.count(".txt[") == 2
    second = run(*options, "Which airport replaced Tegel?")
    assert "opened" in second and second.count(".txt[") == 2

    client = qdrant_client.QdrantClient(path=str(path))
    points = client.scroll("jinav3_example", limit=1000, with_vectors=True)[0]
    client.close()
    texts = {f.name: f.read_text(encoding="utf-8") for f in CORPUS.glob("*.txt")}
    for name, text in texts.items():
        own = sorted((p for p in points if p.payload["metadata"]["source"] == name),
                     key=lambda p: p.payload["metadata"]["start_index"])
        spans = [(p.payload["metadata"]["start_index"],
                  p.payload["metadata"]["start_index"] + len(p.payload["page_content"])) for p in own]
        truth = tiny_embedder.late_chunk(text, spans=spans, task="retrieval.passage", dimensions=DIMS)
        np.testing.assert_allclose([p.vector for p in own], [c.embedding for c in truth], atol=1e-5)
