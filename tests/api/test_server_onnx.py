"""``jinav3 serve --engine onnx`` and ``--engine openvino``: the real command on each engine of the ONNX graph, reached
by the core's API client; plain and late-chunked vectors equal the in-process engine's bit for bit (and torch's within
1e-5)."""

from __future__ import annotations

import numpy as np

from jinav3 import Embedder
from jinav3.testing import same_vectors, serve_command

TEXTS = ["Berlin is the capital of Germany.", "Paris est la capitale de la France.", "東京は日本の首都です。"]


def test_serve_runs_the_onnx_engine(tiny_onnx_dir, tiny_fp32, graph_engine):
    local = Embedder.local(str(tiny_onnx_dir), engine=graph_engine)
    with serve_command(tiny_onnx_dir, "--engine", graph_engine) as (_, base_url):
        remote = Embedder.api(base_url=f"{base_url}/v1", full_dimensions=local.dimensions, max_retries=0)
        got = remote.embed(TEXTS, "retrieval.passage")
        assert same_vectors(got, local.embed(TEXTS, "retrieval.passage"))
        assert np.abs(got - tiny_fp32.embed(TEXTS, "retrieval.passage")).max() <= 1e-5
        document = " ".join(TEXTS)
        chunks = remote.late_chunk(document, "sentences")
        assert same_vectors([c.embedding for c in chunks], [c.embedding for c in local.late_chunk(document)])
        remote.close()
