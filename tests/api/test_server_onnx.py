"""``jinav3 serve --engine onnx`` and ``--engine openvino``, in float32 and int8: the real command on each engine of
the ONNX graph, reached by the core's API client; plain vectors (also of requests sent at once, so they share
sub-rounds) and late-chunked vectors equal the in-process engine's of the same dtype bit for bit (and, in float32,
torch's within 1e-5)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from jinav3 import Embedder
from jinav3.testing import CORPUS, same_vectors, serve_command

TEXTS = ["Berlin is the capital of Germany.", "Paris est la capitale de la France.", "東京は日本の首都です。"]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_serve_runs_the_graph_engines_and_answers_their_vectors(tiny_onnx_dir, tiny_fp32, graph_engine, dtype):
    local = Embedder.local(str(tiny_onnx_dir), engine=graph_engine, dtype=dtype)
    assert local.describe()["dtype"] == dtype
    with serve_command(tiny_onnx_dir, "--engine", graph_engine, "--dtype", dtype) as (_, base_url):
        remote = Embedder.api(base_url=f"{base_url}/v1", full_dimensions=local.dimensions, max_retries=0)
        got = remote.embed(TEXTS, "retrieval.passage")
        assert same_vectors(got, local.embed(TEXTS, "retrieval.passage"))
        if dtype == "float32":
            assert np.abs(got - tiny_fp32.embed(TEXTS, "retrieval.passage")).max() <= 1e-5
        batches = [list(CORPUS[i:i + 1 + i % 4]) for i in range(8)]
        with ThreadPoolExecutor(len(batches)) as pool:  # at once: they share sub-rounds on the server
            served = list(pool.map(lambda texts: remote.embed(texts, "retrieval.query"), batches))
        for texts, vectors in zip(batches, served, strict=True):
            assert same_vectors(vectors, local.embed(texts, "retrieval.query"))
        document = " ".join(TEXTS)
        chunks = remote.late_chunk(document, "sentences")
        assert same_vectors([c.embedding for c in chunks], [c.embedding for c in local.late_chunk(document)])
        remote.close()
