"""Read documents so that no input row can sink the job: every row becomes a *document record*.

A document record has ``source_id`` (the id as text), ``document`` (the text), ``origin`` (``"FILE line N"`` for
JSON Lines, 1-based; ``"FILE row N"`` for Parquet, 0-based) and ``error`` (null, or why the row cannot be indexed),
plus the carried columns. Ray's own JSON reader infers one Arrow schema per block and fails the whole job on a
malformed line, a ``"text": 42`` or an integer id among string ids, without naming the line; these readers parse
each line (or Parquet row) on its own and turn whatever is wrong with it into that row's ``error``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from ray.data.datasource import FileBasedDatasource

from jinav3.distributed.options import IndexOptions
from jinav3.errors import InvalidInputError

RECORD_COLUMNS = ("source_id", "document", "origin", "error")
ROWS_PER_BLOCK = 1024


class BadRow(Exception):
    """Why one input row cannot be indexed (becomes the row's ``error``)."""


def _unicode_problem(value: str) -> str | None:
    """A message if ``value`` cannot be written as UTF-8 (a lone surrogate, e.g. from a JSON ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate U+{ord(value[exc.start]):04X} at character {exc.start}"
    return None


def document_id(value: Any, column: str) -> str:
    """The id as text: strings as they are, integers in decimal; anything else is a ``BadRow``."""
    if value is None:
        raise BadRow(f"the document has no {column!r} (null or missing)")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRow(f"the {column!r} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise BadRow(f"the {column!r} must be a string or an integer, got {_json_type(value)}")
    if not value:
        raise BadRow(f"the {column!r} is an empty string")
    problem = _unicode_problem(value)
    if problem:
        raise BadRow(f"the {column!r} {problem}")
    return value


def document_text(value: Any, column: str) -> str:
    """The text as ``str`` (bytes are decoded as UTF-8); anything else is a ``BadRow``. Blank texts pass here
    and are refused by the preparing stage, which owns what counts as a usable document."""
    if value is None:
        raise BadRow(f"the {column!r} is missing (null)")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRow(f"the {column!r} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(value, str):
        raise BadRow(f"the {column!r} must be a string, got {_json_type(value)}")
    problem = _unicode_problem(value)
    if problem:
        raise BadRow(f"the {column!r} {problem}")
    return value


def carried_value(value: Any) -> str | None:
    """A carried JSON value as text: strings unchanged, other values as compact JSON, null stays null. One type
    for every row, so that lines whose values differ in type cannot break the output schema."""
    if value is None:
        return None
    if isinstance(value, str):
        problem = _unicode_problem(value)
        if problem:
            raise BadRow(f"a carried value {problem}")
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "an object"}
    return names.get(type(value), type(value).__name__)


class _RecordBuilder:
    """Collects document records and emits them as Arrow tables of a fixed schema."""

    def __init__(self, carry: tuple[str, ...], carry_type: Callable[[str], pa.DataType]) -> None:
        self.carry = carry
        self.carry_type = carry_type
        self.columns: dict[str, list[Any]] = {name: [] for name in (*RECORD_COLUMNS, *carry)}

    def __len__(self) -> int:
        return len(self.columns["origin"])

    def add(self, origin: str, source_id: str | None, document: str | None, error: str | None,
            carried: dict[str, Any] | None = None) -> None:
        for name, value in zip(RECORD_COLUMNS, (source_id, document, origin, error), strict=True):
            self.columns[name].append(value)
        for name in self.carry:
            self.columns[name].append(None if carried is None else carried.get(name))

    def build(self) -> pa.Table:
        arrays = {name: pa.array(self.columns[name], pa.string()) for name in RECORD_COLUMNS}
        for name in self.carry:
            arrays[name] = pa.array(self.columns[name], self.carry_type(name))
        self.columns = {name: [] for name in self.columns}
        return pa.table(arrays)


class JsonLinesDocuments(FileBasedDatasource):
    """JSON Lines files (plain or compressed, local or remote), one document record per non-blank line."""

    def __init__(self, paths: list[str], options: IndexOptions, count_only: bool = False, **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)
        self.options = options
        self.count_only = count_only

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        if self.count_only:  # the independent input count: non-blank lines, no JSON parsing
            yield pa.table({"rows": [sum(1 for raw in f.read().split(b"\n") if raw.strip())]})
            return
        o = self.options
        records = _RecordBuilder(o.carry_columns, lambda _: pa.string())
        number = 0
        pending = b""
        while True:
            chunk = f.read(1 << 20)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop() if chunk else b""
            for raw in lines:
                number += 1
                if raw.strip():
                    self._add_line(records, raw, f"{path} line {number}", first=number == 1)
                if len(records) >= ROWS_PER_BLOCK:
                    yield records.build()
            if not chunk:
                break
        if len(records):
            yield records.build()

    def _add_line(self, records: _RecordBuilder, raw: bytes, origin: str, first: bool) -> None:
        source_id, document, error, carried = line_record(raw, self.options, first)
        records.add(origin, source_id, document, error, carried)


def line_record(raw: bytes, options: IndexOptions, first: bool = False
                ) -> tuple[str | None, str | None, str | None, dict[str, Any] | None]:
    """``(source_id, document, error, carried)`` of one JSON line; never raises. ``first``: the file's first
    line, which may start with a UTF-8 byte order mark."""
    o = options
    source_id, carried = None, None
    try:
        try:
            line = raw.decode("utf-8-sig" if first else "utf-8")
        except UnicodeDecodeError as exc:
            raise BadRow(f"the line is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRow(f"the line is not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise BadRow("the line nests JSON too deeply to parse") from None
        if not isinstance(row, dict):
            raise BadRow(f"the line must hold a JSON object, got {_json_type(row)}")
        try:  # kept on the error row too, when they are fine themselves
            carried = {name: carried_value(row.get(name)) for name in o.carry_columns}
            carry_problem = None
        except BadRow as exc:
            carry_problem = exc
        source_id = document_id(row.get(o.id_column), o.id_column)
        document = document_text(row.get(o.text_column), o.text_column)
        if carry_problem is not None:
            raise carry_problem
    except BadRow as exc:
        return source_id, None, str(exc), carried
    return source_id, document, None, carried


class ParquetDocuments(FileBasedDatasource):
    """Parquet files, one document record per row; a column of the wrong type turns that file's rows into
    error rows instead of failing the job. Carried columns keep their Parquet type."""

    def __init__(self, paths: list[str], options: IndexOptions, count_only: bool = False, **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)
        self.options = options
        self.count_only = count_only

    def _open_input_source(self, filesystem: Any, path: str, **open_args: Any) -> pa.NativeFile:
        return filesystem.open_input_file(path)  # Parquet needs random access to read its footer

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        import pyarrow.parquet as pq

        o = self.options
        parquet = pq.ParquetFile(f)
        if self.count_only:
            yield pa.table({"rows": [parquet.metadata.num_rows]})
            return
        names = set(parquet.schema_arrow.names)
        wanted = [name for name in (o.id_column, o.text_column, *o.carry_columns) if name in names]
        first = 0
        for batch in parquet.iter_batches(batch_size=ROWS_PER_BLOCK, columns=wanted):
            yield records_from_table(pa.Table.from_batches([batch]), o, f"{path} row ", first)
            first += batch.num_rows


def records_from_table(table: pa.Table, options: IndexOptions, origin: str | None = None,
                       first: int = 0) -> pa.Table:
    """Document records of an Arrow table with the id and text columns (a Parquet batch, or a batch of a Ray
    Dataset you built). ``origin`` prefixes the row number (``"FILE row "``); ``None`` leaves origins null.
    Carried columns keep their Arrow type."""
    o = options
    records = _RecordBuilder(o.carry_columns, lambda name: _carry_type(table, name))
    ids = _python_values(table, o.id_column, integers=True)
    texts = _python_values(table, o.text_column, integers=False)
    for i in range(table.num_rows):
        where, source_id = None if origin is None else f"{origin}{first + i}", None
        try:
            source_id = document_id(_value(ids, i), o.id_column)
            document = document_text(_value(texts, i), o.text_column)
        except BadRow as exc:
            records.add(where, source_id, None, str(exc))
            continue
        records.add(where, source_id, document, None)
    out = records.build()
    for name in o.carry_columns:  # typed columns, taken over whole (no per-row Python)
        if name in table.column_names:
            out = out.set_column(out.column_names.index(name), name, table.column(name))
    return out


def _carry_type(table: pa.Table, name: str) -> pa.DataType:
    return table.schema.field(name).type if name in table.column_names else pa.null()


def _python_values(table: pa.Table, name: str, integers: bool) -> list[Any] | str:
    """The column's values, or why no row of this file has a usable one (a missing or wrongly typed column).
    String columns go through ``binary`` so that invalid UTF-8 in one row (not every Parquet writer checks)
    fails only that row."""
    if name not in table.column_names:
        return f"the file has no column {name!r}"
    column = table.column(name)
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pc.cast(column, pa.large_binary()).to_pylist()
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or (integers and pa.types.is_integer(kind)):
        return column.to_pylist()
    allowed = "strings or integers" if integers else "strings"
    return f"the column {name!r} is {kind} in this file; it must hold {allowed}"


def _value(values: list[Any] | str, i: int) -> Any:
    if isinstance(values, str):
        raise BadRow(values)
    return values[i]


PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSION_SUFFIXES = ("", ".gz", ".bz2", ".zst", ".lz4", ".snappy")


def _kind(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if any(name.endswith(j + c) for j in JSON_SUFFIXES for c in COMPRESSION_SUFFIXES):
        return "jsonl"
    return None


def list_document_files(sources: list[str]) -> dict[str, list[str]]:
    """The input files by kind (``"jsonl"``, ``"parquet"``): files as given (unknown suffixes are read as JSON
    Lines), folders listed recursively, skipping names that start with ``.`` or ``_``. A folder holding other
    files is refused rather than half read."""
    import pyarrow.fs as pafs

    if not sources:
        raise InvalidInputError("no document files given")
    found: dict[str, list[str]] = {"jsonl": [], "parquet": []}
    for source in sources:
        filesystem, path = pafs.FileSystem.from_uri(source if "://" in source else _absolute(source))
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise InvalidInputError(f"document source {source!r} does not exist")
        if info.type != pafs.FileType.Directory:
            found[_kind(path) or "jsonl"].append(_uri(source, path))
            continue
        others = []
        for entry in filesystem.get_file_info(pafs.FileSelector(path, recursive=True)):
            relative = entry.path[len(path):].lstrip("/")
            if entry.type != pafs.FileType.File or any(part[:1] in "._" for part in relative.split("/")):
                continue
            kind = _kind(entry.path)
            if kind is None:
                others.append(relative)
            else:
                found[kind].append(_uri(source, entry.path))
        if others:
            raise InvalidInputError(f"folder {source!r} holds files that are neither JSON Lines nor Parquet "
                                    f"({', '.join(sorted(others)[:5])}); pass the files you mean instead")
    if not found["jsonl"] and not found["parquet"]:
        raise InvalidInputError(f"no JSON Lines or Parquet files in {', '.join(sources)}")
    return found


def _absolute(path: str) -> str:
    import os

    return os.path.abspath(path)


def _uri(source: str, path: str) -> str:
    return f"{source.split('://', 1)[0]}://{path}" if "://" in source else path


def _datasets(sources: list[str], options: IndexOptions, count_only: bool) -> list[Any]:
    import ray.data

    files = list_document_files(sources)
    readers = {"jsonl": JsonLinesDocuments, "parquet": ParquetDocuments}
    return [ray.data.read_datasource(readers[kind](paths, options, count_only=count_only))
            for kind, paths in files.items() if paths]


def read_documents(sources: list[str], options: IndexOptions) -> Any:
    """A Ray Dataset of document records (see the module docstring) from JSON Lines and Parquet files."""
    first, *rest = _datasets(sources, options, count_only=False)
    return first.union(*rest) if rest else first


def count_documents(sources: list[str], options: IndexOptions) -> int:
    """How many documents the files hold (non-blank JSON lines, Parquet rows), counted apart from the pipeline
    so that the summary can check that every one of them was accounted for."""
    return sum(row["rows"] for d in _datasets(sources, options, count_only=True) for row in d.take_all())


def check_columns(sources: list[str], options: IndexOptions) -> None:
    """Refuse up front a run whose id or text column the first input file does not have (a typo in
    ``id_column``/``text_column`` would otherwise turn every document into an error row)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    files = list_document_files(sources)
    kind = "parquet" if files["parquet"] else "jsonl"
    filesystem, path = pafs.FileSystem.from_uri(files[kind][0])
    if kind == "parquet":
        with filesystem.open_input_file(path) as f:
            names = set(pq.ParquetFile(f).schema_arrow.names)
    else:
        names = set()
        with filesystem.open_input_stream(path, compression="detect") as f:
            for raw in f.read(1 << 20).split(b"\n")[:100]:
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    names.update(row)
        if not names:
            return  # nothing readable near the top: every line will get its own error row
    for role, name in (("id", options.id_column), ("text", options.text_column)):
        if name not in names:
            raise InvalidInputError(f"{files[kind][0]} has no {role} column {name!r} (columns: "
                                    f"{', '.join(sorted(names))}); choose it with id_column=/text_column= "
                                    "(--id-column/--text-column)")
