"""BEIR folder reading: fields, titles, headers, limits that keep relevant documents, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from jinav3 import InvalidInputError
from jinav3.evaluation import load_beir, write_beir
from jinav3.evaluation.synthetic import generate


def _small(folder: Path) -> Path:
    corpus = {"d1": {"title": "Berlin", "text": "It is the capital."}, "d2": "Hamburg has a port.",
              "d3": "Lyon lies on the Rhône.", "d4": "Kyoto was the capital of Japan."}
    queries = {"q1": "capital of Germany", "q2": "French city", "q3": "no judgement", "q4": "only zero"}
    qrels = {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}, "q4": {"d2": 0}, "q9": {"d1": 1}}
    return write_beir(folder, corpus, queries, qrels)


def test_round_trip_keeps_only_judged_queries(tmp_path: Path) -> None:
    data = load_beir(_small(tmp_path / "set"))
    assert data.name == "set"
    assert data.corpus["d1"] == "Berlin\n\nIt is the capital."  # title as a first paragraph
    assert list(data.queries) == ["q1", "q2"]  # q3 unjudged, q4 only zero grades, q9 not in queries.jsonl
    assert data.qrels["q1"] == {"d1": 2, "d2": 0}


def test_limits_keep_relevant_documents(tmp_path: Path) -> None:
    data = load_beir(_small(tmp_path / "set"), limit_queries=1, limit_docs=2)
    assert list(data.queries) == ["q1"]
    assert set(data.corpus) == {"d1", "d2"}  # d1 relevant, then the first other document
    data = load_beir(_small(tmp_path / "set"), limit_docs=1)
    assert set(data.corpus) == {"d1", "d3"}  # relevant documents are never dropped


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"corpus\.jsonl"):
        load_beir(tmp_path)
    folder = _small(tmp_path / "set")
    with pytest.raises(InvalidInputError, match=r"dev\.tsv"):
        load_beir(folder, split="dev")
    (folder / "qrels" / "test.tsv").write_text("q1\td1\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="score"):
        load_beir(folder)


def test_synthetic_set_qrels_are_exact() -> None:
    corpus, queries, qrels = generate(towns=12, seed=3)
    assert len(corpus) == 12 and len(queries) == 24
    for qid, judged in qrels.items():
        assert qid.split("q")[0] in judged  # the town the query was written from is always relevant
        for doc_id in judged:  # and every judged town really states both facts
            clauses = queries[qid].removeprefix("Which town ").removesuffix("?").split(" and ")
            assert len(clauses) == 2, queries[qid]
            assert doc_id in corpus
