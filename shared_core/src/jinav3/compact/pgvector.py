"""A pgvector table that holds each vector twice: packed sign bits in a ``bit(w)`` column with an HNSW index on
Hamming distance, and ``halfvec(w)`` (or ``vector(w)``) for rescoring the candidates at full precision.

Why: none of the framework stores (langchain-postgres, LlamaIndex ``PGVectorStore``, Haystack
``PgvectorDocumentStore``) can make a ``bit`` column, so this table sits beside them and takes the vectors that our
embedders and late-chunking splitters give each framework. The bits written are the core's
(:func:`jinav3.compact.binary_codes`), not pgvector's ``binary_quantize`` (the same rule, value > 0, but computed in
one place). Needs pgvector >= 0.7 (``bit`` Hamming operators, ``halfvec``) and psycopg 3 (the ``pgvector`` extra).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jinav3.compact.forms import Layout, binary_codes
from jinav3.errors import InvalidInputError

#: Column types the float copy may have: half precision (2 bytes a dimension) or single (4 bytes).
RESCORE_TYPES: tuple[str, ...] = ("halfvec", "vector")
#: pgvector's HNSW returns at most ``hnsw.ef_search`` rows (1 to 1000): the candidate count is capped there.
MAX_CANDIDATES = 1000
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_UNIT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Hit:
    """One row found: its Hamming distance to the query's bits and its rescored similarity (the inner product)."""

    id: str
    text: str
    metadata: dict[str, Any]
    hamming: int
    score: float


def _bit_literal(codes: np.ndarray, width: int) -> list[str]:
    return ["".join("1" if bit else "0" for bit in row[:width]) for row in np.unpackbits(codes, axis=1)]


def vector_literal(row: np.ndarray) -> str:
    """pgvector's text form of one vector (``[0.1,...]``), every float32 value written exactly."""
    return "[" + ",".join(repr(float(value)) for value in row) + "]"


class PgvectorBinaryTable:
    """Late-chunked vectors of one width in one table, searched by Hamming distance and rescored in float.

    ``connection`` is an open psycopg 3 connection (the caller owns it); ``table`` a plain lower-case name. The
    table is made on first use, with ``CREATE EXTENSION vector``; an existing one is checked column by column, and
    one made for another width or rescoring type is refused with a message naming both."""

    def __init__(self, connection: Any, table: str, width: int, rescore_type: str = "halfvec") -> None:
        if not _NAME.fullmatch(table):
            raise InvalidInputError(f"table must be a plain lower-case SQL name (letters, digits, _), got {table!r}")
        if rescore_type not in RESCORE_TYPES:
            raise InvalidInputError(f"rescore_type must be one of {RESCORE_TYPES}, got {rescore_type!r}")
        self.connection, self.table, self.rescore_type = connection, table, rescore_type
        self.layout = Layout(width, "binary")
        self._ensure()

    @property
    def width(self) -> int:
        return self.layout.width

    def _columns(self) -> dict[str, str]:
        rows = self.connection.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped", (self.table,)).fetchall()
        return dict(rows)

    def _ensure(self) -> None:
        with self.connection.transaction():
            self.connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            columns = self._columns()
            if columns:
                self._check(columns)
                return
            w = self.width
            self.connection.execute(
                f"CREATE TABLE {self.table} (id text PRIMARY KEY, document text NOT NULL, metadata jsonb NOT NULL, "
                f"bits bit({w}) NOT NULL, embedding {self.rescore_type}({w}) NOT NULL)")
            self.connection.execute(f"CREATE INDEX ON {self.table} USING hnsw (bits bit_hamming_ops)")

    def _check(self, columns: Mapping[str, str]) -> None:
        found_bits = re.fullmatch(r"bit\((\d+)\)", columns.get("bits", ""))
        found_rescore = re.fullmatch(r"(halfvec|vector)\((\d+)\)", columns.get("embedding", ""))
        if not found_bits or not found_rescore:
            raise InvalidInputError(
                f"table {self.table} exists but is no binary table (columns {dict(columns)}); it should have "
                f"bits bit({self.width}) and embedding {self.rescore_type}({self.width})")
        Layout(int(found_bits.group(1)), "binary").require(self.layout, f"table {self.table}")
        held = f"{found_rescore.group(1)}({found_rescore.group(2)})"
        wanted = f"{self.rescore_type}({self.width})"
        if held != wanted:
            raise InvalidInputError(f"table {self.table} rescores with {held}, not {wanted}: open it with "
                                    f"rescore_type={found_rescore.group(1)!r} or use another table")

    def _unit_rows(self, vectors: Any, what: str) -> np.ndarray:
        """Float vectors of this width and unit length: packed codes, ±1 floats or another width are refused."""
        array = np.asarray(vectors)
        if array.ndim == 1:
            array = array[None, :]
        self.layout_of_floats().require(Layout.of(array), f"table {self.table} (bits, rescored in float)")
        rows = array.astype(np.float32)
        norms = np.linalg.norm(rows, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > _UNIT_TOLERANCE)
        if len(bad):
            raise InvalidInputError(
                f"{what} must be unit-length float vectors (the embedder's float output at dimensions="
                f"{self.width}), but row {int(bad[0])} has norm {norms[bad[0]]:.4g}; sign-bit floats "
                "(embedding_type='binary') or codes cannot be rescored")
        return rows

    def layout_of_floats(self) -> Layout:
        """What :meth:`add` and :meth:`search` take: float vectors of the table's width."""
        return Layout(self.width, "float")

    def add(
        self, ids: Sequence[str], texts: Sequence[str], vectors: Any,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Insert (or replace, by id) rows: the bits are the core's binary codes of ``vectors``."""
        rows = self._unit_rows(vectors, "vectors")
        metas = list(metadatas) if metadatas is not None else [{} for _ in ids]
        if not len(ids) == len(texts) == len(rows) == len(metas):
            raise InvalidInputError(f"{len(ids)} ids, {len(texts)} texts, {len(rows)} vectors and {len(metas)} "
                                    "metadata entries: give one of each per row")
        bits = _bit_literal(binary_codes(rows), self.width)
        w = self.width
        with self.connection.transaction(), self.connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {self.table} (id, document, metadata, bits, embedding) "
                f"VALUES (%s, %s, %s::jsonb, %s::bit({w}), %s::{self.rescore_type}({w})) "
                "ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document, metadata = EXCLUDED.metadata, "
                "bits = EXCLUDED.bits, embedding = EXCLUDED.embedding",
                [(str(i), t, json.dumps(dict(m)), b, vector_literal(r))
                 for i, t, m, b, r in zip(ids, texts, metas, bits, rows, strict=True)])

    def stored_bits(self, ids: Sequence[str]) -> np.ndarray:
        """The bits the table holds for ``ids``, packed like :func:`jinav3.compact.binary_codes`."""
        found = dict(self.connection.execute(
            f"SELECT id, bits::text FROM {self.table} WHERE id = ANY(%s)", (list(map(str, ids)),)).fetchall())
        missing = [i for i in ids if str(i) not in found]
        if missing:
            raise InvalidInputError(f"table {self.table} has no rows with ids {missing[:5]}")
        unpacked = np.array([[c == "1" for c in found[str(i)]] for i in ids], dtype=bool).reshape(len(ids), -1)
        return np.packbits(unpacked, axis=1)

    def search(self, query_vector: Any, limit: int = 10, oversampling: float | None = 4.0) -> list[Hit]:
        """The ``limit`` best rows: ``ceil(limit * oversampling)`` candidates by Hamming distance (HNSW), re-ranked
        by the inner product with the float copy; ``oversampling=None`` ranks by Hamming distance alone."""
        query = self._unit_rows(query_vector, "the query")
        if len(query) != 1:
            raise InvalidInputError(f"search takes one query vector, got {len(query)}")
        if limit < 1 or (oversampling is not None and not oversampling >= 1.0):
            raise InvalidInputError(f"limit must be >= 1 and oversampling >= 1 or None, got {limit}, {oversampling}")
        count = limit if oversampling is None else int(np.ceil(limit * oversampling))
        if count > MAX_CANDIDATES:
            raise InvalidInputError(f"{count} candidates (limit x oversampling) is more than pgvector's HNSW gives "
                                    f"({MAX_CANDIDATES}, its largest hnsw.ef_search)")
        w, bits = self.width, _bit_literal(binary_codes(query), self.width)[0]
        order = "hamming, id" if oversampling is None else "score DESC, hamming, id"
        with self.connection.transaction():
            self.connection.execute(f"SET LOCAL hnsw.ef_search = {max(40, count)}")
            rows = self.connection.execute(
                f"WITH candidates AS (SELECT id, document, metadata, embedding, bits <~> %(bits)s::bit({w}) "
                f"AS hamming FROM {self.table} ORDER BY bits <~> %(bits)s::bit({w}) LIMIT %(count)s) "
                f"SELECT id, document, metadata, hamming, "
                f"-(embedding <#> %(query)s::{self.rescore_type}({w})) AS score "
                f"FROM candidates ORDER BY {order} LIMIT %(limit)s",
                {"bits": bits, "count": count, "query": vector_literal(query[0]), "limit": limit}).fetchall()
        return [Hit(i, text, meta, int(hamming), float(score)) for i, text, meta, hamming, score in rows]
