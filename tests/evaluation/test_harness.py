"""The harness end to end: CLI on a generated set with a known answer, and its vectors against the core's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import Embedder, InvalidInputError, truncate_normalise
from jinav3.cli import main
from jinav3.evaluation import (
    EvalConfig,
    evaluate,
    load_beir,
    mean_metrics,
    rank_documents,
    rank_documents_hamming,
    write_beir,
)
from jinav3.evaluation.harness import chunk_corpus, embed_setting
from jinav3.evaluation.synthetic import generate

DOCS = {
    "berlin": "Berlin is the capital of Germany. The Berlin Wall divided the city from 1961 to 1989.",
    "kyoto": "Kyoto was the imperial capital of Japan for a thousand years. It has two thousand temples.",
    "lyon": "Lyon lies where the Rhône meets the Saône. Silk weaving made the city rich.",
    "hamburg": "Hamburg has one of the largest ports in Europe. A great fire destroyed its old town in 1842.",
}


def _quiet(_: str) -> None:
    pass


def test_cli_exact_sentences_rank_first(tmp_path: Path, minilm_dir: Path) -> None:
    # MiniLM has no task instructions, so a query equal to a sentence chunk has cosine 1 with it: the naive
    # sentence setting must put every relevant document first (nDCG@10 = Recall@100 = 1).
    queries = {"q1": "The Berlin Wall divided the city from 1961 to 1989.",
               "q2": "Silk weaving made the city rich.", "q3": "It has two thousand temples."}
    qrels = {"q1": {"berlin": 1}, "q2": {"lyon": 1}, "q3": {"kyoto": 1}}
    folder = write_beir(tmp_path / "cities", DOCS, queries, qrels)
    out = tmp_path / "report.json"
    code = main(["eval", str(folder), "--model", str(minilm_dir), "--device", "cpu", "--no-progress",
                 "--chunk-size", "8", "256", "--matryoshka", "64", "--embedding-types", "float", "binary",
                 "--cache-dir", str(tmp_path / "cache"), "-o", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"naive:tokens8", "late:tokens8", "naive:tokens256", "late:tokens256",
                                      "naive:sentences", "late:sentences", "whole"}
    exact = report["results"]["naive:sentences"]
    assert exact["metrics"] == {"ndcg@10": pytest.approx(1.0), "recall@100": 1.0}
    assert exact["vectors"] == 8 and report["chunks"]["tokens256"] == 4 and report["chunks"]["sentences"] == 8
    assert report["chunks"]["tokens8"] > 8
    assert report["documents"] == 4 and report["queries"] == 3
    for result in report["results"].values():
        assert result["metrics"]["recall@100"] == 1.0  # four documents: every one is in the top 100
        assert result["seconds"] > 0 and not result["cached"]
        assert set(result["scores"]) == {"float", "binary"}
        assert set(result["scores"]["float"]) == {"64", "384"}
        assert result["scores"]["float"]["384"] == result["metrics"]
    assert {"queries", "embedding:late:tokens8", "scoring:whole", "total"} <= set(report["phase_seconds"])
    # the rerun reads every vector from the cache and gives the same figures
    assert main(["eval", str(folder), "--model", str(minilm_dir), "--device", "cpu", "--no-progress",
                 "--chunk-size", "8", "256", "--matryoshka", "32", "--cache-dir", str(tmp_path / "cache"),
                 "-o", str(out)]) == 0
    again = json.loads(out.read_text())
    assert all(r["cached"] for r in again["results"].values())
    for name, result in again["results"].items():
        assert result["metrics"] == report["results"][name]["metrics"]
        assert result["seconds"] == report["results"][name]["seconds"]  # the time it took when embedded


def test_cli_eval_on_the_graph_engines(tmp_path: Path, minilm_onnx_dir: Path, graph_engine: str) -> None:
    """``jinav3 eval --engine onnx`` / ``openvino`` on the exported MiniLM: exact sentences rank first there too."""
    queries = {"q1": "The Berlin Wall divided the city from 1961 to 1989.", "q2": "Silk weaving made the city rich."}
    folder = write_beir(tmp_path / "cities", DOCS, queries, {"q1": {"berlin": 1}, "q2": {"lyon": 1}})
    out = tmp_path / "report.json"
    assert main(["eval", str(folder), "--model", str(minilm_onnx_dir), "--engine", graph_engine, "--no-progress",
                 "--chunker", "sentences", "--cache-dir", str(tmp_path / "cache"), "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["results"]["naive:sentences"]["metrics"] == {"ndcg@10": pytest.approx(1.0), "recall@100": 1.0}


def test_late_and_naive_vectors_match_the_core(tiny_embedder: Embedder) -> None:
    corpus, _, _ = generate(towns=3, seed=1)
    docs = [f"{d['title']}\n\n{d['text']}" for d in corpus.values()]
    config = EvalConfig(chunkers=("tokens",), chunk_sizes=(24,), window=64, overlap=16)
    spans = chunk_corpus(docs, "tokens", 24, tiny_embedder.tokenizer)
    assert spans == [tiny_embedder.chunk_spans(doc, "tokens", chunk_size=24) for doc in docs]
    late = embed_setting(tiny_embedder, "late", docs, spans, config)
    expected = [c.embedding for doc, s in zip(docs, spans, strict=True)
                for c in tiny_embedder.late_chunk(doc, spans=s, window=64, overlap=16, normalized=False)]
    np.testing.assert_allclose(late.vectors, np.stack(expected), atol=1e-6)  # raw, full width
    normalised = [c.embedding for doc, s in zip(docs, spans, strict=True)
                  for c in tiny_embedder.late_chunk(doc, spans=s, window=64, overlap=16)]
    np.testing.assert_allclose(truncate_normalise(late.vectors), np.stack(normalised), atol=1e-6)
    assert late.owners.tolist() == [i for i, s in enumerate(spans) for _ in s]
    naive = embed_setting(tiny_embedder, "naive", docs, spans, config)
    texts = [doc[a:b] for doc, s in zip(docs, spans, strict=True) for a, b in s]
    np.testing.assert_allclose(truncate_normalise(naive.vectors), tiny_embedder.embed(texts, "retrieval.passage"),
                               atol=1e-6)
    whole = embed_setting(tiny_embedder, "whole", docs, spans, config)
    np.testing.assert_allclose(truncate_normalise(whole.vectors), tiny_embedder.embed(docs, "retrieval.passage"),
                               atol=1e-6)


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("towns") / "towns", *generate(towns=6, seed=2))


@settings(max_examples=20, deadline=None)
@given(dims=st.lists(st.integers(1, 32), min_size=1, max_size=4, unique=True),
       types=st.lists(st.sampled_from(["float", "binary", "ubinary"]), min_size=1, max_size=3, unique=True))
def test_scores_equal_embedding_at_that_width_and_type(towns: Path, tiny_embedder: Embedder, dims: list[int],
                                                       types: list[str]) -> None:
    # The harness derives every size and encoding from cached raw vectors; asking the embedder for that size and
    # encoding directly (and ranking floats by cosine, bits by Hamming distance) must give the same figures.
    data = load_beir(towns)
    report = evaluate(tiny_embedder, data, EvalConfig(settings=("whole",), dimensions=tuple(dims),
                                                      embedding_types=tuple(types)), log=_quiet)
    scores = report["results"]["whole"]["scores"]
    assert set(scores) == set(types)
    for etype in types:
        for d in dims:
            q = tiny_embedder.embed(list(data.queries.values()), "retrieval.query", d, embedding_type=etype)
            c = tiny_embedder.embed(list(data.corpus.values()), "retrieval.passage", d, embedding_type=etype)
            rank = rank_documents if etype == "float" else rank_documents_hamming
            ranked = rank(q, c, range(len(c)), list(data.corpus))
            expected = mean_metrics(dict(zip(data.queries, ranked, strict=True)), data.qrels)
            assert scores[etype][str(d)] == pytest.approx(expected)
    if "binary" in types and "ubinary" in types:
        assert scores["binary"] == scores["ubinary"]  # the same bits, offset by 128: the same Hamming ranking


def test_bad_settings_are_errors(tmp_path: Path, tiny_embedder: Embedder) -> None:
    with pytest.raises(InvalidInputError, match="settings"):
        EvalConfig(settings=("fancy",))
    with pytest.raises(InvalidInputError, match="chunkers"):
        EvalConfig(chunkers=("words",))
    with pytest.raises(InvalidInputError, match="chunk sizes"):
        EvalConfig(chunk_sizes=(0,))
    with pytest.raises(InvalidInputError, match="embedding types"):
        EvalConfig(embedding_types=("base64",))
    data = load_beir(write_beir(tmp_path / "s", DOCS, {"q": "x"}, {"q": {"lyon": 1}}))
    with pytest.raises(InvalidInputError, match="outside"):
        evaluate(tiny_embedder, data, EvalConfig(dimensions=(4096,)), log=_quiet)
    with pytest.raises(InvalidInputError, match="tokenizer"):
        chunk_corpus(["some text"], "tokens", 8, None)
