"""The two per-batch steps of the pipeline, as plain callables Ray Data maps over Arrow batches.

``prepare_batch`` runs as ordinary CPU tasks: it takes the document records of :mod:`jinav3.distributed.reading`,
drops those a resumed job already wrote, and cuts each document into character spans (loading only the tokenizer,
and only for the ``tokens`` chunker). ``EmbedActor`` is the callable class of the actor
pool: it loads the model once and turns prepared documents into chunk rows through the core ``Embedder``
(``late_chunk_many`` or ``embed``). A document that cannot be processed becomes one row with an ``error`` message
and no vector, so every input document is accounted for. ``WritingEmbedActor`` also writes its chunk rows as one
Parquet part of the output folder and hands back only a small report row, so the vectors never travel through
Ray's object store to separate write tasks.
"""

from __future__ import annotations

import functools
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jinav3.chunking import Span, chunk_spans, make_chunker
from jinav3.distributed.options import IndexOptions
from jinav3.distributed.output import OutputFolder
from jinav3.embedder import Embedder
from jinav3.errors import JinaV3Error
from jinav3.matryoshka import validate_dimensions

SPANS = pa.list_(pa.int64())
OUTPUT_COLUMNS = ("source_id", "chunk_index", "start", "end", "text", "embedding", "error", "origin")


@functools.lru_cache(maxsize=4)
def _tokenizer(model: str) -> Any:
    """The model's tokenizer, once per worker process (Ray reuses workers across tasks)."""
    from jinav3.model_files import load_tokenizer, resolve_model_dir

    return load_tokenizer(resolve_model_dir(model))


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


def _skip_mask(records: pa.Table, done: tuple[Any, Any]) -> pa.Array:
    """True for records a resumed job already wrote: their id is written, or (for rows with no usable id) an
    error row from their origin is."""
    ids, origins = (_fetch(ref) for ref in done)
    source_id = records.column("source_id")
    by_id = pc.is_in(source_id, value_set=ids)
    by_origin = pc.and_(pc.is_null(source_id), pc.is_in(records.column("origin"), value_set=origins))
    return pc.fill_null(pc.or_(by_id, by_origin), False)


@functools.lru_cache(maxsize=2)
def _fetch(ref: Any) -> pa.Array:
    """The done set, fetched from Ray's object store once per worker process."""
    import ray

    return ray.get(ref)


def prepare_batch(records: pa.Table, options: IndexOptions, done: tuple[Any, Any] | None = None) -> pa.Table:
    """One row per document record not in ``done`` (object refs of written ids and origins, when resuming): the
    record's columns plus its chunk ``starts``/``ends``; a document that cannot be cut gets its ``error``."""
    if done is not None:
        records = records.filter(pc.invert(_skip_mask(records, done)))
    documents = records.column("document").to_pylist()
    errors = records.column("error").to_pylist()
    starts: list[list[int]] = []
    ends: list[list[int]] = []
    for i, document in enumerate(documents):
        spans: list[Span] = []
        if errors[i] is None:
            try:
                if not document.strip():
                    raise JinaV3Error("the document is empty")
                spans = _spans(document, options)
            except JinaV3Error as exc:
                errors[i] = str(exc)
        starts.append([s for s, _ in spans])
        ends.append([e for _, e in spans])
    prepared = records.set_column(records.column_names.index("error"), "error", pa.array(errors, pa.string()))
    return prepared.append_column("starts", pa.array(starts, SPANS)).append_column("ends", pa.array(ends, SPANS))


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
        rows = batch.select(["source_id", "origin", "document", "starts", "ends", "error"]).to_pydict()
        ok = [i for i, error in enumerate(rows["error"]) if error is None]
        spans = [list(zip(rows["starts"][i], rows["ends"][i], strict=True)) for i in ok]
        found = dict(zip(ok, self._vectors_or_errors([rows["document"][i] for i in ok], spans), strict=True))
        out: dict[str, list[Any]] = {k: [] for k in OUTPUT_COLUMNS if k != "embedding"}
        vectors: list[np.ndarray] = []
        origin: list[int] = []  # input row of every output row, to carry columns along
        for i, source_id in enumerate(rows["source_id"]):
            result = found.get(i, rows["error"][i])
            if isinstance(result, str):
                out["source_id"].append(source_id)
                out["origin"].append(rows["origin"][i])
                for key in ("chunk_index", "start", "end", "text"):
                    out[key].append(None)
                out["error"].append(result)
                vectors.append(np.full((1, self.width), np.nan, np.float32))
                origin.append(i)
                continue
            document = rows["document"][i]
            for index, (start, end) in enumerate(zip(rows["starts"][i], rows["ends"][i], strict=True)):
                out["source_id"].append(source_id)
                out["origin"].append(rows["origin"][i])
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
            "origin": pa.array(out["origin"], pa.string()),
        })
        carried = batch.select(list(self.options.carry_columns)).take(pa.array(origin, pa.int64()))
        for name in self.options.carry_columns:
            table = table.append_column(name, carried.column(name))
        return table


class WritingEmbedActor(EmbedActor):
    """``EmbedActor`` that writes each batch's chunk rows as one atomic Parquet part of ``folder`` and returns one
    report row per batch (part name, documents, chunks, failed, and when the batch started and ended)."""

    def __init__(self, options: IndexOptions, folder: OutputFolder) -> None:
        super().__init__(options)
        self.folder = folder

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        rows = super().__call__(batch) if batch.num_rows else None
        part, chunks, failed = None, 0, 0
        if rows is not None:
            part = self.folder.write_part(rows, lambda: _batch_key(batch))
            failed = int(pc.sum(pc.is_valid(rows.column("error"))).as_py() or 0)
            chunks = rows.num_rows - failed
        return pa.table({"part": [part], "documents": [batch.num_rows], "chunks": [chunks], "failed": [failed],
                         "started": [started], "finished": [time.time()]})


def _batch_key(batch: pa.Table) -> bytes:
    """What names a part: the origins of its documents, so that a re-run batch gets the same name. Documents
    without an origin (a Ray Dataset you built) get a random name instead."""
    origins = batch.column("origin")
    if origins.null_count:
        return uuid.uuid4().bytes
    return "\0".join(origins.to_pylist()).encode("utf-8")
