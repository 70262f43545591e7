"""The harness end to end: CLI on a generated set with a known answer, and its vectors against the core's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jinav3 import Embedder, InvalidInputError
from jinav3.cli import main
from jinav3.evaluation import EvalConfig, evaluate, load_beir, mean_metrics, rank_documents, write_beir
from jinav3.evaluation.harness import chunk_corpus, embed_setting
from jinav3.evaluation.synthetic import generate

DOCS = {
    "berlin": "Berlin is the capital of Germany. The Berlin Wall divided the city from 1961 to 1989.",
    "kyoto": "Kyoto was the imperial capital of Japan for a thousand years. It has two thousand temples.",
    "lyon": "Lyon lies where the Rhône meets the Saône. Silk weaving made the city rich.",
    "hamburg": "Hamburg has one of the largest ports in Europe. A great fire destroyed its old town in 1842.",
}


def test_cli_exact_sentences_rank_first(tmp_path: Path, minilm_dir: Path) -> None:
    # MiniLM has no task instructions, so a query equal to a sentence chunk has cosine 1 with it: the naive
    # sentence setting must put every relevant document first (nDCG@10 = Recall@100 = 1).
    queries = {"q1": "The Berlin Wall divided the city from 1961 to 1989.",
               "q2": "Silk weaving made the city rich.", "q3": "It has two thousand temples."}
    qrels = {"q1": {"berlin": 1}, "q2": {"lyon": 1}, "q3": {"kyoto": 1}}
    folder = write_beir(tmp_path / "cities", DOCS, queries, qrels)
    out = tmp_path / "report.json"
    code = main(["eval", str(folder), "--model", str(minilm_dir), "--device", "cpu", "--no-progress",
                 "--matryoshka", "64", "-o", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"naive:tokens256", "late:tokens256", "naive:sentences", "late:sentences",
                                      "whole"}
    exact = report["results"]["naive:sentences"]
    assert exact["metrics"] == {"ndcg@10": pytest.approx(1.0), "recall@100": 1.0}
    assert exact["vectors"] == 8 and report["chunks"] == {"tokens256": 4, "sentences": 8}
    assert report["documents"] == 4 and report["queries"] == 3
    for result in report["results"].values():
        assert result["metrics"]["recall@100"] == 1.0  # four documents: every one is in the top 100
        assert result["seconds"] > 0 and set(result["by_dimension"]) == {"64"}


def test_late_and_naive_vectors_match_the_core(tiny_embedder: Embedder) -> None:
    corpus, _, _ = generate(towns=3, seed=1)
    docs = [f"{d['title']}\n\n{d['text']}" for d in corpus.values()]
    config = EvalConfig(chunkers=("tokens",), chunk_size=24, window=64, overlap=16)
    spans = chunk_corpus(tiny_embedder, docs, "tokens", 24)
    late = embed_setting(tiny_embedder, "late", docs, spans, config)
    expected = [c.embedding for doc, s in zip(docs, spans, strict=True)
                for c in tiny_embedder.late_chunk(doc, spans=s, window=64, overlap=16)]
    np.testing.assert_allclose(late.vectors, np.stack(expected), atol=1e-6)
    assert late.owners.tolist() == [i for i, s in enumerate(spans) for _ in s]
    naive = embed_setting(tiny_embedder, "naive", docs, spans, config)
    texts = [doc[a:b] for doc, s in zip(docs, spans, strict=True) for a, b in s]
    np.testing.assert_allclose(naive.vectors, tiny_embedder.embed(texts, "retrieval.passage"), atol=1e-6)
    whole = embed_setting(tiny_embedder, "whole", docs, spans, config)
    np.testing.assert_allclose(whole.vectors, tiny_embedder.embed(docs, "retrieval.passage"), atol=1e-6)


def test_matryoshka_scores_equal_embedding_at_that_width(tmp_path: Path, tiny_embedder: Embedder) -> None:
    folder = write_beir(tmp_path / "towns", *generate(towns=6, seed=2))
    data = load_beir(folder)
    report = evaluate(tiny_embedder, data, EvalConfig(chunkers=("sentences",), settings=("whole",), dimensions=(8,)))
    small = Embedder(tiny_embedder.backend)  # same model; vectors asked for at 8 dimensions directly
    q = small.embed(list(data.queries.values()), "retrieval.query", 8)
    d = small.embed(list(data.corpus.values()), "retrieval.passage", 8)
    ranked = rank_documents(q, d, range(len(d)), list(data.corpus))
    expected = mean_metrics(dict(zip(data.queries, ranked, strict=True)), data.qrels)
    assert report["results"]["whole"]["by_dimension"]["8"] == pytest.approx(expected)


def test_bad_settings_are_errors(tmp_path: Path, tiny_embedder: Embedder) -> None:
    with pytest.raises(InvalidInputError, match="settings"):
        EvalConfig(settings=("fancy",))
    with pytest.raises(InvalidInputError, match="chunkers"):
        EvalConfig(chunkers=("words",))
    data = load_beir(write_beir(tmp_path / "s", DOCS, {"q": "x"}, {"q": {"lyon": 1}}))
    with pytest.raises(InvalidInputError, match="outside"):
        evaluate(tiny_embedder, data, EvalConfig(dimensions=(4096,)))
