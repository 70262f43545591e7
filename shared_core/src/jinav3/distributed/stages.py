"""The two per-batch steps of the pipeline, as plain callables Ray Data maps over Arrow batches.

``prepare_batch`` runs as ordinary CPU tasks: it decodes and checks each document and cuts it into character spans
(loading only the tokenizer, and only for the ``tokens`` chunker). ``EmbedActor`` is the callable class of the actor
pool: it loads the model once and turns prepared documents into chunk rows through the core ``Embedder``
(``late_chunk_many`` or ``embed``). A document that cannot be processed becomes one row with an ``error`` message
and no vector, so every input document is accounted for.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from jinav3.chunking import Span, chunk_spans, make_chunker
from jinav3.distributed.options import IndexOptions
from jinav3.embedder import Embedder
from jinav3.errors import InvalidInputError, JinaV3Error
from jinav3.matryoshka import validate_dimensions

SPANS = pa.list_(pa.int64())


@functools.lru_cache(maxsize=4)
def _tokenizer(model: str) -> Any:
    """The model's tokenizer, once per worker process (Ray reuses workers across tasks)."""
    from jinav3.model_files import load_tokenizer, resolve_model_dir

    return load_tokenizer(resolve_model_dir(model))


def _decode(value: Any) -> str:
    """The document text, or a JinaV3Error saying why there is none."""
    if value is None:
        raise JinaV3Error("the text is missing (null)")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JinaV3Error(f"the text is not valid UTF-8 ({exc})") from None
    if not isinstance(value, str):
        raise JinaV3Error(f"the text must be a string, got {type(value).__name__}")
    if not value.strip():
        raise JinaV3Error("the document is empty")
    return value


def _spans(document: str, options: IndexOptions) -> list[Span]:
    if options.chunker is None:
        return [(0, len(document))]
    needs_tokenizer = isinstance(options.chunker, str) and options.chunker in ("tokens", "token")
    tokenizer = _tokenizer(options.model) if needs_tokenizer else None
    chunker = make_chunker(options.chunker, tokenizer, options.chunk_size, options.chunk_overlap)
    found = chunk_spans(document, chunker)
    if not found:
        raise JinaV3Error("the chunker produced no chunks for the document")
    return found


def _column(batch: pa.Table, name: str, role: str) -> list[Any]:
    if name not in batch.column_names:
        columns = ", ".join(batch.column_names)
        raise InvalidInputError(f"the documents have no {role} column {name!r} (columns: {columns})")
    return batch.column(name).to_pylist()


def prepare_batch(batch: pa.Table, options: IndexOptions) -> pa.Table:
    """One row per document: ``source_id``, the decoded ``document``, its chunk ``starts``/``ends``, and an
    ``error`` (null when the document is fine), plus the carried columns."""
    ids = _column(batch, options.id_column, "id")
    texts = _column(batch, options.text_column, "text")
    documents: list[str | None] = []
    starts: list[list[int]] = []
    ends: list[list[int]] = []
    errors: list[str | None] = []
    for source_id, value in zip(ids, texts, strict=True):
        try:
            if source_id is None:
                raise JinaV3Error(f"the document has no {options.id_column!r} (null)")
            document = _decode(value)
            spans = _spans(document, options)
        except JinaV3Error as exc:
            documents.append(None)
            starts.append([])
            ends.append([])
            errors.append(str(exc))
            continue
        documents.append(document)
        starts.append([s for s, _ in spans])
        ends.append([e for _, e in spans])
        errors.append(None)
    prepared = pa.table({
        "source_id": pa.array([None if i is None else str(i) for i in ids], pa.string()),
        "document": pa.array(documents, pa.string()),
        "starts": pa.array(starts, SPANS),
        "ends": pa.array(ends, SPANS),
        "error": pa.array(errors, pa.string()),
    })
    for name in options.carry_columns:
        prepared = prepared.append_column(name, batch.column(name))
    return prepared


class EmbedActor:
    """Ray Data callable class: the model is loaded once per actor, then each batch of prepared documents is
    embedded through the core ``Embedder`` into one row per chunk (or one error row per failed document)."""

    def __init__(self, options: IndexOptions) -> None:
        self.options = options
        self.embedder = Embedder.local(options.model, device=options.device, dtype=options.dtype,
                                       **options.embedder_options)
        self.width = validate_dimensions(options.dimensions, self.embedder.dimensions)
        self.vector_type = pa.list_(pa.float32(), self.width)

    def _vectors(self, documents: Sequence[str], spans: Sequence[list[Span]]) -> list[np.ndarray]:
        """One (chunks, width) float32 array per document, from the core, for the whole batch at once."""
        o = self.options
        if o.late_chunking:
            chunked = self.embedder.late_chunk_many(documents, spans=spans, task=o.task, dimensions=o.dimensions)
            return [np.stack([c.embedding for c in chunks]) for chunks in chunked]
        texts = [doc[s:e] for doc, doc_spans in zip(documents, spans, strict=True) for s, e in doc_spans]
        flat = self.embedder.embed(texts, o.task, o.dimensions, truncate=o.truncate)
        bounds = np.cumsum([0, *(len(s) for s in spans)])
        return [flat[a:b] for a, b in itertools.pairwise(bounds)]

    def _vectors_or_errors(
        self, documents: list[str], spans: list[list[Span]]
    ) -> list[np.ndarray | str]:
        """Like ``_vectors``, but a document the core rejects becomes its error message instead of failing the
        batch: the batch is tried whole first, then one document at a time to find the culprits."""
        try:
            return list(self._vectors(documents, spans))
        except JinaV3Error:
            pass
        results: list[np.ndarray | str] = []
        for document, doc_spans in zip(documents, spans, strict=True):
            try:
                results.append(self._vectors([document], [doc_spans])[0])
            except JinaV3Error as exc:
                results.append(f"{type(exc).__name__}: {exc}")
        return results

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pydict()
        ok = [i for i, error in enumerate(rows["error"]) if error is None]
        spans = [list(zip(rows["starts"][i], rows["ends"][i], strict=True)) for i in ok]
        found = dict(zip(ok, self._vectors_or_errors([rows["document"][i] for i in ok], spans), strict=True))
        out: dict[str, list[Any]] = {k: [] for k in ("source_id", "chunk_index", "start", "end", "text", "error")}
        vectors: list[np.ndarray] = []
        origin: list[int] = []  # input row of every output row, to carry columns along
        for i, source_id in enumerate(rows["source_id"]):
            result = found.get(i, rows["error"][i])
            if isinstance(result, str):
                out["source_id"].append(source_id)
                for key in ("chunk_index", "start", "end", "text"):
                    out[key].append(None)
                out["error"].append(result)
                vectors.append(np.full((1, self.width), np.nan, np.float32))
                origin.append(i)
                continue
            document = rows["document"][i]
            for index, (start, end) in enumerate(zip(rows["starts"][i], rows["ends"][i], strict=True)):
                out["source_id"].append(source_id)
                out["chunk_index"].append(index)
                out["start"].append(start)
                out["end"].append(end)
                out["text"].append(document[start:end])
                out["error"].append(None)
                origin.append(i)
            vectors.append(result.astype(np.float32, copy=False))
        return self._table(out, vectors, batch, origin)

    def _table(
        self, out: dict[str, list[Any]], vectors: list[np.ndarray], batch: pa.Table, origin: list[int]
    ) -> pa.Table:
        flat = np.concatenate(vectors) if vectors else np.zeros((0, self.width), np.float32)
        failed = pa.array([error is not None for error in out["error"]], pa.bool_())
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), pa.float32()), self.width,
                                                      mask=failed)
        table = pa.table({
            "source_id": pa.array(out["source_id"], pa.string()),
            "chunk_index": pa.array(out["chunk_index"], pa.int32()),
            "start": pa.array(out["start"], pa.int64()),
            "end": pa.array(out["end"], pa.int64()),
            "text": pa.array(out["text"], pa.string()),
            "embedding": embedding,
            "error": pa.array(out["error"], pa.string()),
        })
        carried = batch.select(list(self.options.carry_columns)).take(pa.array(origin, pa.int64()))
        for name in self.options.carry_columns:
            table = table.append_column(name, carried.column(name))
        return table
