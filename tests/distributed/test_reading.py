"""Document records from any JSON line or Arrow row, and the output folder's bookkeeping, without a Ray cluster.

Every input, however broken, gives exactly one record: the document exactly as written, or an error saying what is
wrong. The Ray tests then check the same records flow through a real job.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("ray")

from jinav3 import InvalidInputError
from jinav3.distributed import IndexOptions
from jinav3.distributed.output import OutputFolder
from jinav3.distributed.reading import line_record, records_from_table

OPTIONS = IndexOptions(model="unused", carry_columns=("meta",))
SOME = settings(max_examples=60, deadline=None)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
ids = st.text(min_size=1) | st.integers()
lone_surrogates = st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@SOME
@given(source_id=ids, text=st.text(), meta=json_values, bom=st.booleans())
def test_a_good_line_gives_its_document_exactly(source_id, text, meta, bom):
    raw = json.dumps({"id": source_id, "text": text, "meta": meta}).encode()
    got_id, document, error, carried = line_record((b"\xef\xbb\xbf" if bom else b"") + raw, OPTIONS, first=bom)
    if not _encodable(text):
        assert error is not None and "lone surrogate" in error
        return
    assert (got_id, document, error) == (str(source_id), text, None)
    assert carried["meta"] == (meta if isinstance(meta, str) or meta is None
                               else json.dumps(meta, ensure_ascii=False, separators=(",", ":")))


@SOME
@given(row=st.dictionaries(st.sampled_from(["id", "text", "meta", "x"]), json_values, max_size=4))
def test_any_json_value_as_id_or_text_gives_one_record(row):
    source_id, document, error, _ = line_record(json.dumps(row).encode(), OPTIONS)
    valid_id = isinstance(row.get("id"), str | int) and not isinstance(row.get("id"), bool) and row.get("id") != ""
    valid_text = isinstance(row.get("text"), str)
    if valid_id and valid_text and all(_encodable(v) for v in (str(row["id"]), row["text"])) \
            and (not isinstance(row.get("meta"), str) or _encodable(row["meta"])):
        assert (source_id, document, error) == (str(row["id"]), row["text"], None)
    else:
        assert document is None and error
        assert source_id is None or (valid_id and source_id == str(row["id"]))


@SOME
@given(raw=st.binary(max_size=40) | st.text(max_size=40).map(str.encode), surrogate=lone_surrogates)
def test_arbitrary_bytes_never_raise_and_lone_surrogate_escapes_are_named(raw, surrogate):
    _, document, error, _ = line_record(raw, OPTIONS)
    assert (document is None) == (error is not None)
    line = f'{{"id": "a", "text": "x{surrogate}y"}}'.encode()
    assert line_record(line, OPTIONS)[:3] == ("a", None, "the 'text' holds a lone surrogate "
                                              f"U+{surrogate[2:].upper()} at character 1")


def test_each_kind_of_bad_line_is_named():
    cases = {
        b'{"id": "a", "text": 42}': ("a", "the 'text' must be a string, got an integer"),
        b'{"id": "a", "text": ["x"]}': ("a", "the 'text' must be a string, got a list"),
        b'{"id": "a"}': ("a", "the 'text' is missing (null)"),
        b'{"id": 1.5, "text": "t"}': (None, "the 'id' must be a string or an integer, got a number"),
        b'{"id": true, "text": "t"}': (None, "the 'id' must be a string or an integer, got a boolean"),
        b'{"text": "t"}': (None, "the document has no 'id' (null or missing)"),
        b'{"id": "a", "text": "t"} {"id": "b"}': (None, "the line is not valid JSON (Extra data at column 26)"),
        b'{"id": "a", "text": "caf\xe9"}': (None, "the line is not valid UTF-8 (invalid continuation byte at byte 24)"),
        b'"just a string"': (None, "the line must hold a JSON object, got a string"),
    }
    for raw, (source_id, error) in cases.items():
        assert line_record(raw, OPTIONS)[0::2] == (source_id, error), raw
    assert line_record(b'{"id": 12, "text": "t"}', OPTIONS)[:3] == ("12", "t", None)


@SOME
@given(rows=st.lists(st.tuples(st.none() | st.integers(-2**63, 2**63 - 1),
                               st.none() | st.binary(max_size=12) | st.text(max_size=12).map(str.encode)),
                     min_size=1, max_size=20))
def test_arrow_rows_with_undecodable_bytes_fail_alone(rows):
    """A Parquet string column may hold invalid UTF-8 (not every writer checks): only that row fails."""
    ids = pa.array([r[0] for r in rows], pa.int64())
    texts = pa.array([r[1] for r in rows], pa.binary()).cast(pa.string(), safe=False)  # unchecked, like a writer
    out = records_from_table(pa.table({"id": ids, "text": texts, "meta": ids}), OPTIONS, "f.parquet row ", 5)
    assert out.column("origin").to_pylist() == [f"f.parquet row {5 + i}" for i in range(len(rows))]
    assert out.column("meta").type == pa.int64()
    for (source_id, raw), got_id, document, error in zip(rows, *(out.column(c).to_pylist() for c in
                                                              ("source_id", "document", "error")), strict=True):
        try:
            text = None if raw is None else raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        assert got_id == (None if source_id is None else str(source_id))
        assert (document, error is None) == ((text, True) if source_id is not None and text is not None
                                             else (None, False))


def test_a_column_of_the_wrong_type_fails_its_rows_only():
    table = pa.table({"id": pa.array([1.5, 2.5]), "text": pa.array([1, 2])})
    out = records_from_table(table, IndexOptions(model="unused"), "f row ")
    assert out.column("error").to_pylist() == ["the column 'id' is double in this file; it must hold strings or "
                                               "integers"] * 2


def test_output_folder_refuses_a_resume_with_other_settings_and_drops_half_written_parts(tmp_path):
    folder = OutputFolder(tmp_path / "out")
    folder.start(IndexOptions(model="m", dimensions=64), resume=False)
    name = folder.write_part(pa.table({"source_id": ["a"], "origin": ["f line 1"]}), lambda: b"f line 1")
    (tmp_path / "out" / f".{name}.123.tmp").write_bytes(b"PAR1 half")
    assert folder.write_part(pa.table({"source_id": ["a"], "origin": ["f line 1"]}), lambda: b"f line 1") == name
    with pytest.raises(InvalidInputError, match=r"dimensions: 64 then, 128 now"):
        folder.start(IndexOptions(model="m", dimensions=128), resume=True)
    folder.start(IndexOptions(model="m", dimensions=64), resume=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_jinav3_job.json", name]
    assert pq.read_table(folder.parts()).num_rows == 1  # the re-run batch replaced its part
    written_ids, written_origins = folder.done()
    assert written_ids.to_pylist() == ["a"] and written_origins.to_pylist() == []
