"""The Ray pipeline on a real local Ray instance (2 CPUs, no GPU) against the single-process core.

One Ray instance for the module; a few hundred generated documents on the tiny checkpoint. Every run checks that
the vectors equal the core's, that every document is accounted for, and that the Parquet output reads back.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ray = pytest.importorskip("ray")
pd = pytest.importorskip("pandas")

from jinav3 import Embedder, InvalidInputError
from jinav3.cli import main
from jinav3.distributed import IndexOptions, chunk_dataset, index_corpus

WORDS = "river stone light city wall market winter bridge harbour letter garden engine tower music".split()
BAD = {"empty": "", "blank": "   \n\t ", "null": None}


def _document(rng: random.Random, i: int) -> str:
    sentences = []
    for _ in range(rng.randint(1, 6)):
        words = rng.choices(WORDS, k=rng.randint(3, 14))
        sentences.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
    if i % 7 == 0:
        sentences.insert(1, "\n\n")
    return f"Document {i}. " + " ".join(sentences)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    rng = random.Random(8)
    rows = [{"id": f"doc-{i}", "text": _document(rng, i), "lang": rng.choice(["en", "de"])} for i in range(300)]
    for name, text in BAD.items():
        rows.append({"id": f"bad-{name}", "text": text, "lang": "en"})
    return rows


@pytest.fixture(scope="module")
def good(corpus: list[dict]) -> dict[str, str]:
    return {r["id"]: r["text"] for r in corpus if not r["id"].startswith("bad-")}


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def jsonl(corpus: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    return path


def _rows(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values(["source_id", "chunk_index"], na_position="first")


def _vectors(frame: pd.DataFrame) -> np.ndarray:
    return np.stack(frame["embedding"].to_numpy()).astype(np.float32)


def test_late_chunks_from_jsonl_equal_the_core(ray_local, tiny_checkpoint, tiny_embedder, corpus, jsonl, good,
                                               tmp_path):
    options = IndexOptions(model=str(tiny_checkpoint), device="cpu", batch_size=32, carry_columns=("lang",))
    summary = index_corpus(jsonl, tmp_path / "out", options)

    assert (summary.documents_in, summary.documents_indexed, summary.documents_failed) == (303, 300, 3)
    assert summary.balanced
    lines = {r["id"]: n for n, r in enumerate(corpus, 1)}
    assert sorted(summary.errors) == [
        ("bad-blank", f"{jsonl} line {lines['bad-blank']}", "the document is empty"),
        ("bad-empty", f"{jsonl} line {lines['bad-empty']}", "the document is empty"),
        ("bad-null", f"{jsonl} line {lines['bad-null']}", "the 'text' is missing (null)"),
    ]
    assert (tmp_path / "out" / "_SUCCESS").exists()
    schema = pq.read_schema(next((tmp_path / "out").glob("*.parquet")))
    assert schema.field("embedding").type == pa.list_(pa.float32(), tiny_embedder.dimensions)

    rows = _rows(tmp_path / "out")
    ok = rows[rows["error"].isna()]
    assert summary.chunks == len(ok) and set(ok["source_id"]) == set(good)
    ids = sorted(good)
    expected = tiny_embedder.late_chunk_many([good[i] for i in ids], chunker="sentences", task="retrieval.passage")
    want = [(i, c.index, c.start, c.end, c.text) for i, chunks in zip(ids, expected, strict=True) for c in chunks]
    got = list(zip(ok["source_id"], ok["chunk_index"], ok["start"], ok["end"], ok["text"], strict=True))
    assert got == want
    np.testing.assert_allclose(_vectors(ok), np.stack([c.embedding for cs in expected for c in cs]),
                               rtol=1e-5, atol=1e-6)
    failed = rows[rows["error"].notna()]
    assert failed["embedding"].isna().all() and failed["chunk_index"].isna().all()
    langs = {r["id"]: r["lang"] for r in json.loads("[" + ",".join(jsonl.read_text().splitlines()) + "]")}
    assert (rows["lang"] == rows["source_id"].map(langs)).all()


def test_plain_token_chunks_from_parquet_with_undecodable_bytes(ray_local, tiny_checkpoint, tiny_embedder, good,
                                                                tmp_path):
    ids = sorted(good)[:120]
    texts = [good[i].encode() for i in ids] + [b"\xff\xfe not utf-8", b"fine text. really."]
    table = pa.table({"key": pa.array([*ids, "bad-bytes", None]), "body": pa.array(texts, pa.binary())})
    pq.write_table(table, tmp_path / "docs.parquet")
    options = IndexOptions(model=str(tiny_checkpoint), device="cpu", id_column="key", text_column="body",
                           chunker="tokens", chunk_size=12, late_chunking=False, dimensions=16, task="text-matching",
                           batch_size=25)
    summary = index_corpus(tmp_path / "docs.parquet", tmp_path / "out", options)

    assert (summary.documents_in, summary.documents_indexed, summary.documents_failed) == (122, 120, 2)
    source = tmp_path / "docs.parquet"
    assert sorted(summary.errors, key=str) == [
        ("bad-bytes", f"{source} row 120", "the 'body' is not valid UTF-8 (invalid start byte at byte 0)"),
        (None, f"{source} row 121", "the document has no 'key' (null or missing)"),
    ]
    ok = _rows(tmp_path / "out").dropna(subset=["chunk_index"])
    assert sorted(set(ok["source_id"])) == ids
    for doc_id, frame in ok.groupby("source_id"):
        spans = tiny_embedder.chunk_spans(good[doc_id], "tokens", chunk_size=12)
        assert list(zip(frame["start"], frame["end"], strict=True)) == spans
    expected = tiny_embedder.embed(list(ok["text"]), task="text-matching", dimensions=16)
    np.testing.assert_allclose(_vectors(ok), expected, rtol=1e-5, atol=1e-6)
    assert np.allclose(np.linalg.norm(_vectors(ok), axis=1), 1.0, atol=1e-5)


def test_two_actors_whole_documents_and_core_rejections(ray_local, tiny_checkpoint, good):
    """``chunker=None``: one vector per document. A plain embedding longer than ``max_length`` is rejected by the
    core; only that document becomes an error row, its batch-mates are still embedded."""
    long_text = " ".join(["word"] * 1000)  # ~5000 tokens with the tiny vocabulary
    items = [{"id": i, "text": good[i]} for i in sorted(good)[:60]] + [{"id": "too-long", "text": long_text}]
    dataset = ray.data.from_items(items)
    options = IndexOptions(model=str(tiny_checkpoint), device="cpu", chunker=None, late_chunking=False, actors=2,
                           cpus_per_actor=0.5, batch_size=16, embedder_options={"max_length": 1024})
    frame = chunk_dataset(dataset, options).to_pandas().sort_values("source_id")

    assert len(frame) == 61
    failed = frame[frame["error"].notna()]
    assert list(failed["source_id"]) == ["too-long"] and "InputTooLongError" in failed["error"].iloc[0]
    ok = frame[frame["error"].isna()]
    core = Embedder.local(str(tiny_checkpoint), device="cpu", max_length=1024)
    np.testing.assert_allclose(_vectors(ok), core.embed(list(ok["text"]), task="retrieval.passage"),
                               rtol=1e-5, atol=1e-6)
    assert (ok["start"] == 0).all() and (ok["end"] == ok["text"].str.len()).all()


def test_cli_index_reports_counts_and_writes_errors(ray_local, tiny_checkpoint, jsonl, tmp_path, capsys):
    out, errors = tmp_path / "out", tmp_path / "errors.jsonl"
    argv = ["index", "--ray", str(jsonl), "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu",
            "--chunker", "paragraphs", "--dimensions", "8", "--errors", str(errors), "--batch-size", "64"]
    assert main(argv) == 0
    report = capsys.readouterr().err
    assert "303 documents in, 300 indexed" in report and "3 failed" in report
    failed = sorted((json.loads(line) for line in errors.read_text().splitlines()), key=lambda f: f["source_id"])
    assert [f["source_id"] for f in failed] == ["bad-blank", "bad-empty", "bad-null"]
    assert all(f["origin"].startswith(f"{jsonl} line ") for f in failed)
    assert pq.read_table(out).schema.field("embedding").type == pa.list_(pa.float32(), 8)
    assert main(argv) == 2  # the output folder is not empty any more
    assert "not empty" in capsys.readouterr().err


def test_configuration_errors_fail_before_or_at_model_load(ray_local, tiny_checkpoint, jsonl, tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="no text column 'body'"):
        chunk_dataset(ray.data.read_json(str(jsonl)), IndexOptions(model=str(tiny_checkpoint), text_column="body"))
    with pytest.raises(InvalidInputError, match="unknown task 'retrieval'"):
        IndexOptions(model=str(tiny_checkpoint), task="retrieval")
    with pytest.raises(InvalidInputError, match="clash"):
        IndexOptions(model=str(tiny_checkpoint), carry_columns=("text",))
    options = IndexOptions(model=str(tiny_checkpoint), device="cpu", dimensions=64)  # the tiny model is 32 wide
    with pytest.raises(Exception, match="dimensions must be between 1 and 32"):
        chunk_dataset(ray.data.from_items([{"id": 1, "text": "One. Two."}]), options).materialize()
    assert main(["index", str(jsonl), "-o", str(tmp_path / "x")]) == 2  # a usage error, like every other one
    assert "jinav3 index: error: this command is the Ray pipeline: pass --ray" in capsys.readouterr().err


# -- bad input lines ---------------------------------------------------------------------------------------------
# Each kind maps a line number to (raw line, id it must be reported under or None, text when the line is good).
sentences = st.lists(st.sampled_from(WORDS), min_size=2, max_size=8).map(lambda w: " ".join(w).capitalize() + ".")
good_texts = st.lists(sentences, min_size=1, max_size=4).map(" ".join)
LINE_KINDS = {
    "good": lambda n, text: (json.dumps({"id": f"g{n}", "text": text}).encode(), f"g{n}", text),
    "int id": lambda n, text: (json.dumps({"id": 1000 + n, "text": text}).encode(), str(1000 + n), text),
    "text is a number": lambda n, _: (json.dumps({"id": f"b{n}", "text": n}).encode(), f"b{n}", None),
    "text is a list": lambda n, text: (json.dumps({"id": f"b{n}", "text": [text]}).encode(), f"b{n}", None),
    "no text": lambda n, _: (json.dumps({"id": f"b{n}"}).encode(), f"b{n}", None),
    "blank text": lambda n, _: (json.dumps({"id": f"b{n}", "text": " \n "}).encode(), f"b{n}", None),
    "float id": lambda n, text: (json.dumps({"id": n + 0.5, "text": text}).encode(), None, None),
    "malformed": lambda n, text: (json.dumps({"id": f"b{n}", "text": text}).encode()[:-2], None, None),
    "two objects": lambda n, text: (json.dumps({"id": f"b{n}", "text": text}).encode() * 2, None, None),
    "not an object": lambda n, text: (json.dumps([n, text]).encode(), None, None),
    "not UTF-8": lambda n, text: (json.dumps({"id": f"b{n}", "text": text}).encode().replace(b" ", b"\xe9", 1),
                                  None, None),
    "lone surrogate": lambda n, text: (f'{{"id": "b{n}", "text": "{text} \\udc80"}}'.encode(), f"b{n}", None),
}


@settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(kinds=st.lists(st.sampled_from(sorted(LINE_KINDS)), min_size=60, max_size=60).map(
           lambda k: [*LINE_KINDS, *k]),  # every kind at least once, the rest drawn
       texts=st.lists(good_texts, min_size=len(LINE_KINDS) + 60, max_size=len(LINE_KINDS) + 60),
       invalid_utf8=st.binary(min_size=1, max_size=4).filter(lambda b: not _decodes(b)))
def test_bad_lines_and_rows_become_error_rows_naming_file_and_line(ray_local, tiny_checkpoint, tmp_path_factory,
                                                                   kinds, texts, invalid_utf8):
    """One job over a folder with a JSON Lines file holding every kind of bad line, and two Parquet files whose id
    columns have different types (int64, string), with null ids, null texts and string cells holding invalid
    UTF-8. Every line and row is accounted for exactly once; bad ones name their file and line (or row)."""
    folder = tmp_path_factory.mktemp("bad")
    source = folder / "docs.jsonl"
    expected: dict[str, tuple[str | None, str | None]] = {}  # origin -> (reported id, text if good)
    lines: list[bytes] = []
    for i, (kind, text) in enumerate(zip(kinds, texts, strict=False)):
        if i == 5:
            lines += [b"", b"  \t"]  # blank lines hold no document
        raw, source_id, good_text = LINE_KINDS[kind](len(lines) + 1, text)
        expected[f"{source} line {len(lines) + 1}"] = (source_id, good_text)
        lines.append(raw)
    source.write_bytes(b"\n".join(lines) + b"\n")
    for name, ids in (("a.parquet", pa.array([1, 2, None, 4], pa.int64())),
                      ("b.parquet", pa.array(["p1", "p2", "p3", None]))):
        texts_ = pa.array([b"One. Two.", invalid_utf8, None, b"Three."], pa.binary()).cast(pa.string(), safe=False)
        pq.write_table(pa.table({"id": ids, "text": texts_}), folder / name)
        for row, (source_id, text) in enumerate(zip(ids.to_pylist(), ["One. Two.", None, None, "Three."],
                                                    strict=True)):
            reported = None if source_id is None else str(source_id)
            expected[f"{folder / name} row {row}"] = (reported, text if reported is not None else None)
    out = tmp_path_factory.mktemp("bad-out") / "out"
    summary = index_corpus(folder, out, IndexOptions(model=str(tiny_checkpoint), device="cpu", batch_size=16))

    good = {o: v for o, v in expected.items() if v[1] is not None}
    assert (summary.documents_in, summary.documents_indexed, summary.documents_failed) == (
        len(expected), len(good), len(expected) - len(good))
    rows = pd.read_parquet(out)
    failed = rows[rows["error"].notna()]
    assert failed["origin"].is_unique and set(failed["origin"]) == set(expected) - set(good)
    for origin, source_id, error in zip(failed["origin"], failed["source_id"], failed["error"], strict=True):
        assert (None if pd.isna(source_id) else source_id) == expected[origin][0], (origin, error)
    ok = rows[rows["error"].isna()]
    for origin, chunks in ok.groupby("origin"):
        source_id, text = good[origin]
        assert set(chunks["source_id"]) == {source_id}
        assert "".join(chunks.sort_values("chunk_index")["text"]).replace(" ", "") == text.replace(" ", "")


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_cli_index_on_the_graph_engines(ray_local, tiny_onnx_dir, graph_engine, good, tmp_path):
    """``jinav3 index --engine onnx`` / ``openvino``: the Ray actors run that engine, and their late chunks equal
    the same engine's in this process."""
    ids = sorted(good)[:24]
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": good[i]}) + "\n" for i in ids), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["index", "--ray", str(source), "-o", str(out), "--model", str(tiny_onnx_dir), "--engine",
                 graph_engine, "--batch-size", "8"]) == 0
    rows = _rows(out)
    core = Embedder.local(str(tiny_onnx_dir), engine=graph_engine)
    expected = core.late_chunk_many([good[i] for i in ids], chunker="sentences", task="retrieval.passage")
    assert list(rows["text"]) == [c.text for chunks in expected for c in chunks]
    np.testing.assert_allclose(_vectors(rows), np.stack([c.embedding for cs in expected for c in cs]),
                               rtol=1e-5, atol=1e-6)
