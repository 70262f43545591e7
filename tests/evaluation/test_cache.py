"""The vector cache: reruns skip the model and give the same figures; anything that changes the vectors misses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import Embedder
from jinav3.evaluation import EvalConfig, VectorCache, default_cache_dir, evaluate, load_beir, write_beir
from jinav3.evaluation.synthetic import generate


def _quiet(_: str) -> None:
    pass


@pytest.fixture
def towns(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "towns", *generate(towns=4, seed=5))


def test_rerun_with_more_dimensions_does_not_embed(tmp_path: Path, towns: Path, recording_backend) -> None:
    embedder = Embedder(recording_backend)
    cache = VectorCache(tmp_path / "cache")
    config = EvalConfig(chunkers=("tokens", "sentences"), chunk_sizes=(16, 32))
    data = load_beir(towns)
    calls = len(recording_backend.calls)
    first = evaluate(embedder, data, config, cache=cache, log=_quiet)
    assert len(recording_backend.calls) > calls
    calls = len(recording_backend.calls)
    wider = EvalConfig(chunkers=("tokens", "sentences"), chunk_sizes=(16, 32), dimensions=(8, 16),
                       embedding_types=("float", "binary"))
    lines: list[str] = []
    second = evaluate(embedder, data, wider, cache=cache, log=lines.append)
    assert len(recording_backend.calls) == calls  # nothing reached the model
    assert any("from the cache" in line for line in lines)
    uncached = evaluate(embedder, data, wider, log=_quiet)
    for name, result in second["results"].items():
        assert result["cached"] and not uncached["results"][name]["cached"]
        assert result["metrics"] == first["results"][name]["metrics"]
        fresh = uncached["results"][name]["scores"]
        assert set(result["scores"]) == set(fresh) == {"float", "binary"}
        for etype, by_dim in result["scores"].items():
            assert set(by_dim) == set(fresh[etype]) == {"8", "16", "32"}
            for dim, metrics in by_dim.items():
                assert metrics == pytest.approx(fresh[etype][dim])
        assert result["vectors"] == uncached["results"][name]["vectors"]


def test_changed_inputs_miss_the_cache(tmp_path: Path, towns: Path, recording_backend) -> None:
    embedder = Embedder(recording_backend)
    cache = VectorCache(tmp_path / "cache")
    config = EvalConfig(chunkers=("sentences",), settings=("naive", "whole"))
    evaluate(embedder, load_beir(towns), config, cache=cache, log=_quiet)
    entries = len(list((tmp_path / "cache").glob("*.npy")))
    assert entries == 3  # queries, naive:sentences, whole
    corpus = (towns / "corpus.jsonl").read_text(encoding="utf-8").replace("town", "village", 1)
    (towns / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    calls = len(recording_backend.calls)
    report = evaluate(embedder, load_beir(towns), config, cache=cache, log=_quiet)
    assert not any(r["cached"] for r in report["results"].values())
    assert len(recording_backend.calls) == calls + 2  # both document settings re-embedded, queries re-used
    assert len(list((tmp_path / "cache").glob("*.npy"))) == entries + 2
    other_task = EvalConfig(chunkers=("sentences",), settings=("whole",), document_task="text-matching")
    assert not evaluate(embedder, load_beir(towns), other_task, cache=cache, log=_quiet)["results"]["whole"]["cached"]


def test_unreadable_entries_are_recomputed(tmp_path: Path, towns: Path, tiny_embedder: Embedder) -> None:
    cache = VectorCache(tmp_path / "cache")
    config = EvalConfig(chunkers=("sentences",), settings=("whole",))
    first = evaluate(tiny_embedder, load_beir(towns), config, cache=cache, log=_quiet)
    for npy in (tmp_path / "cache").glob("*.npy"):
        npy.write_bytes(b"not an array")
    again = evaluate(tiny_embedder, load_beir(towns), config, cache=cache, log=_quiet)
    assert not again["results"]["whole"]["cached"]
    assert again["results"]["whole"]["metrics"] == first["results"]["whole"]["metrics"]
    assert VectorCache(None).load({"kind": "anything"}) is None  # no folder: caching is off


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(0, 5), cols=st.integers(1, 9), seed=st.integers(0, 1000),
       parts=st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.none()),
                             max_size=4))
def test_round_trip_is_exact(tmp_path_factory: pytest.TempPathFactory, rows: int, cols: int, seed: int,
                             parts: dict) -> None:
    cache = VectorCache(tmp_path_factory.mktemp("cache"))
    array = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    assert cache.load(parts) is None
    cache.save(parts, array, {"seconds": 1.5})
    loaded, facts = cache.load(parts)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, array) and facts == {"seconds": 1.5}
    assert cache.load({**parts, "extra": 1}) is None


def test_default_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JINAV3_CACHE", str(tmp_path / "j"))
    assert default_cache_dir() == tmp_path / "j" / "eval"
    monkeypatch.delenv("JINAV3_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "jinav3" / "eval"
