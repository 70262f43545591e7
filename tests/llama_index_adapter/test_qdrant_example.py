"""examples/llama_index_rag.py with ``--qdrant``: llama-index-vector-stores-qdrant in local mode stores the
late-chunked node vectors, and a fresh process answers queries from the persisted collection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import DIMS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama_index_rag.py"
CORPUS = EXAMPLE.parent / "corpus"


def run(*argv: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLE), *argv], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_persist_then_query_from_a_fresh_process(tiny_model, tiny_embedder, tmp_path):
    qdrant_client = pytest.importorskip("qdrant_client")
    pytest.importorskip("llama_index.vector_stores.qdrant")
    path = tmp_path / "qdrant"
    options = ["--model", tiny_model, "--dimensions", str(DIMS), "--top", "2", "--qdrant", str(path)]
    first = run(*options, "Where is Berlin?")
    assert "indexed" in first and first.count(".txt[") == 2
    second = run(*options, "Which airport replaced Tegel?")
    assert "opened" in second and second.count(".txt[") == 2

    client = qdrant_client.QdrantClient(path=str(path))
    points = client.scroll("jinav3_example", limit=1000, with_vectors=True)[0]
    client.close()
    nodes = [(json.loads(p.payload["_node_content"]), p.vector) for p in points]
    for file in CORPUS.glob("*.txt"):
        own = sorted((n for n in nodes if n[0]["metadata"]["file_name"] == file.name),
                     key=lambda n: n[0]["start_char_idx"])
        spans = [(n["start_char_idx"], n["end_char_idx"]) for n, _ in own]
        truth = tiny_embedder.late_chunk(file.read_text(encoding="utf-8"), spans=spans, task="retrieval.passage",
                                         dimensions=DIMS)
        np.testing.assert_allclose([v for _, v in own], [c.embedding for c in truth], atol=1e-5)
