"""``jinav3 eval --backend api`` against a real ``jinav3 serve`` app on loopback gives the local backend's figures.

Whole documents and naive chunks are the same texts on both paths, so every figure matches. Late chunking over the
API follows the Jina API's contract: a request's inputs are the chunks of one text, joined with one space. Where
that join is the document itself (chunks separated by single spaces) the figures match too; where a token chunk
cuts a word, the server sees the space-joined text, and the vectors are exactly those of that text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import Embedder
from jinav3.backends.api_late import document_order, sent_texts
from jinav3.cli import main
from jinav3.evaluation import write_beir
from jinav3.evaluation.synthetic import generate

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer


@pytest.fixture(scope="module")
def server(tiny_embedder: Embedder) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(tiny_embedder, ServerConfig())) as running:
        yield running


def _single_spaced_towns(folder: Path) -> Path:
    """The towns set with every document on one line, sentences separated by one space, no titles."""
    corpus, queries, qrels = generate(towns=5, seed=4)
    flat = {doc_id: " ".join(f"{doc['title']}. {doc['text']}".split()) for doc_id, doc in corpus.items()}
    return write_beir(folder, flat, queries, qrels)


def _run(args: list[str], out: Path) -> dict:
    assert main([*args, "--no-progress", "--no-cache", "-o", str(out)]) == 0
    return json.loads(out.read_text())


def test_api_figures_equal_local(tmp_path: Path, tiny_checkpoint: Path, server: BackgroundServer) -> None:
    folder = _single_spaced_towns(tmp_path / "towns")
    common = ["eval", str(folder), "--chunker", "tokens", "sentences", "--chunk-size", "16",
              "--matryoshka", "8", "--embedding-types", "float", "binary"]
    local = _run([*common, "--model", str(tiny_checkpoint), "--device", "cpu"], tmp_path / "local.json")
    api = _run([*common, "--backend", "api", "--base-url", server.base_url, "--tokenizer", str(tiny_checkpoint),
                "--full-dimensions", "32"], tmp_path / "api.json")
    assert api["model"]["backend"] == "api" and local["model"]["backend"] == "local"
    assert api["chunks"] == local["chunks"]
    same = ["whole", "naive:tokens16", "naive:sentences", "late:sentences"]
    for name in same:
        for etype, by_dim in local["results"][name]["scores"].items():
            for dim, metrics in by_dim.items():
                assert api["results"][name]["scores"][etype][dim] == pytest.approx(metrics, abs=1e-6), (name, dim)


def test_token_chunks_need_a_tokenizer_over_the_api(tmp_path: Path, server: BackgroundServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = _single_spaced_towns(tmp_path / "towns")
    code = main(["eval", str(folder), "--backend", "api", "--base-url", server.base_url, "--chunker", "tokens",
                 "--no-progress", "--no-cache"])
    assert code == 2
    assert "--tokenizer" in capsys.readouterr().err


WORDS = ["Berlin", "is", "the", "capital", "of", "Germany.", "Its", "wall", "fell", "in", "1989.", "amyloid",
         "plaques", "form", "slowly;", "they", "grow.", "Über", "naïve", "café"]


@settings(max_examples=15, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), min_size=3, max_size=40),
       gaps=st.lists(st.sampled_from([" ", "  ", "\n", "\n\n"]), min_size=40, max_size=40),
       size=st.integers(1, 12))
def test_api_late_chunks_are_the_space_joined_sent_texts(tiny_embedder: Embedder, server: BackgroundServer,
                                                   words: list[str], gaps: list[str], size: int) -> None:
    document = "".join(w + g for w, g in zip(words, gaps, strict=False)).strip()
    spans = tiny_embedder.chunk_spans(document, "tokens", chunk_size=size)
    ordered, where = document_order(spans)  # distinct spans in document order, as the client sends them
    chunks = sent_texts(document, ordered)  # the chunk texts, each led by its separator less the join's space
    joined = " ".join(chunks)
    joined_spans, at = [], 0
    for chunk in chunks:
        joined_spans.append((at, at + len(chunk)))
        at += len(chunk) + 1
    with Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions) as api:
        over_api = api.late_chunk(document, spans=spans, normalized=False)
    local = tiny_embedder.late_chunk(joined, spans=joined_spans, normalized=False)
    np.testing.assert_allclose(np.stack([c.embedding for c in over_api]),
                               np.stack([c.embedding for c in local])[where], atol=1e-5)
    if joined == document and chunks == [document[a:b] for a, b in ordered]:  # single-space separators only
        same = tiny_embedder.late_chunk(document, spans=spans, normalized=False)
        np.testing.assert_allclose(np.stack([c.embedding for c in over_api]),
                                   np.stack([c.embedding for c in same]), atol=1e-5)
