"""The two per-batch steps of the pipeline, as plain callables Ray Data maps over Arrow batches.

``prepare_batch`` runs as ordinary CPU tasks: it takes the document records of :mod:`jinav3.distributed.reading`,
drops those a resumed job already wrote, cuts each document into character spans and, for late chunking,
tokenises it with its instruction (``jinav3.DocumentPreparer``: tokenizer only, no torch). ``EmbedActor`` is the
callable class of the actor pool: it loads the model once and turns prepared documents into chunk rows through
the core ``Embedder`` (``late_chunk_prepared``, the forward pass only, or ``embed``). A document that cannot be
processed becomes one row with an ``error`` message and no vector, so every input document is accounted for.
``WritingEmbedActor`` also writes its chunk rows as one Parquet part of the output folder and hands back only a
small report row, so the vectors never travel through Ray's object store to separate write tasks.
"""

from __future__ import annotations

import functools
import itertools
import pickle
import time
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jinav3.distributed.options import IndexOptions
from jinav3.distributed.output import OutputFolder
from jinav3.embedder import Embedder
from jinav3.errors import JinaV3Error
from jinav3.late_chunking.chunking import Span, chunk_spans, make_chunker
from jinav3.late_chunking.preparation import DocumentPreparer
from jinav3.matryoshka import validate_dimensions

SPANS = pa.list_(pa.int64())
OUTPUT_COLUMNS = ("source_id", "chunk_index", "start", "end", "text", "embedding", "error", "origin")


@functools.lru_cache(maxsize=4)
def _preparer(model: str) -> DocumentPreparer:
    """The model's tokenizer and instructions, once per worker process (Ray reuses workers across tasks)."""
    return DocumentPreparer.from_model(model)


def _spans(document: str, options: IndexOptions) -> list[Span]:
    if options.chunker is None:
        return [(0, len(document))]
    needs_tokenizer = isinstance(options.chunker, str) and options.chunker in ("tokens", "token")
    tokenizer = _preparer(options.model).tokenizer if needs_tokenizer else None
    chunker = make_chunker(options.chunker, tokenizer, options.chunk_size, options.chunk_overlap, options.language)
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
    record's columns plus its chunk ``starts``/``ends`` and, for late chunking, the ``prepared`` document
    (tokenised with its instruction and pooling plan, pickled) so that the actors only run the model. A document
    that cannot be cut or tokenised gets its ``error``."""
    if done is not None:
        records = records.filter(pc.invert(_skip_mask(records, done)))
    documents = records.column("document").to_pylist()
    errors = records.column("error").to_pylist()
    starts: list[list[int]] = []
    ends: list[list[int]] = []
    prepared: list[bytes | None] = []
    for i, document in enumerate(documents):
        spans: list[Span] = []
        ready = None
        if errors[i] is None:
            try:
                if not document.strip():
                    raise JinaV3Error("the document is empty")
                spans = _spans(document, options)
                if options.late_chunking:
                    item = _preparer(options.model).prepare(document, options.task, spans=spans)
                    ready = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            except JinaV3Error as exc:
                errors[i], spans = str(exc), []
        starts.append([s for s, _ in spans])
        ends.append([e for _, e in spans])
        prepared.append(ready)
    out = records.set_column(records.column_names.index("error"), "error", pa.array(errors, pa.string()))
    return (out.append_column("starts", pa.array(starts, SPANS)).append_column("ends", pa.array(ends, SPANS))
            .append_column("prepared", pa.array(prepared, pa.binary())))


class EmbedActor:
    """Ray Data callable class: the model is loaded once per actor, then each batch of prepared documents is
    embedded through the core ``Embedder`` into one row per chunk (or one error row per failed document)."""

    def __init__(self, options: IndexOptions) -> None:
        self.options = options
        self.embedder = Embedder.local(options.model, device=options.device, dtype=options.dtype,
                                       **options.embedder_options)
        self.width = validate_dimensions(options.dimensions, self.embedder.dimensions)
        self.vector_type = pa.list_(pa.float32(), self.width)

    def _vectors(self, batch: pa.Table, rows: list[int]) -> list[np.ndarray]:
        """One (chunks, width) float32 array per listed row, from the core, for all of them at once."""
        o = self.options
        if o.late_chunking:
            blobs = batch.column("prepared").take(pa.array(rows, pa.int64())).to_pylist()
            chunked = self.embedder.late_chunk_prepared([pickle.loads(b) for b in blobs], dimensions=o.dimensions)
            return [np.stack([c.embedding for c in chunks]) for chunks in chunked]
        picked = batch.select(["document", "starts", "ends"]).take(pa.array(rows, pa.int64())).to_pydict()
        texts = [doc[s:e] for doc, lo, hi in zip(picked["document"], picked["starts"], picked["ends"], strict=True)
                 for s, e in zip(lo, hi, strict=True)]
        flat = self.embedder.embed(texts, o.task, o.dimensions, truncate=o.truncate)
        bounds = np.cumsum([0, *(len(lo) for lo in picked["starts"])])
        return [flat[a:b] for a, b in itertools.pairwise(bounds)]

    def _vectors_or_errors(self, batch: pa.Table, rows: list[int]) -> list[np.ndarray | str]:
        """Like ``_vectors``, but a document the core rejects becomes its error message instead of failing the
        batch: the batch is tried whole first, then one document at a time to find the culprits."""
        try:
            return list(self._vectors(batch, rows))
        except JinaV3Error:
            pass
        results: list[np.ndarray | str] = []
        for row in rows:
            try:
                results.append(self._vectors(batch, [row])[0])
            except JinaV3Error as exc:
                results.append(f"{type(exc).__name__}: {exc}")
        return results

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Chunk rows of the batch, built column-wise: each document's rows repeat its id/origin/carried values
        (an Arrow ``take``), its spans are its ``starts``/``ends`` lists flattened, its texts one slice each."""
        errors = batch.column("error").to_pylist()
        ok = [i for i, error in enumerate(errors) if error is None]
        for i, result in zip(ok, self._vectors_or_errors(batch, ok), strict=True):
            errors[i] = result
        counts = [1 if isinstance(r, str) else len(r) for r in errors]
        origin = pa.array(np.repeat(np.arange(len(errors)), counts), pa.int64())  # input row of each output row
        documents = batch.column("document").to_pylist()
        starts, ends = batch.column("starts").to_pylist(), batch.column("ends").to_pylist()
        chunk_index, start, end, text, error = [], [], [], [], []
        for i, result in enumerate(errors):
            if isinstance(result, str):
                for column in (chunk_index, start, end, text):
                    column.append(None)
                error.append(result)
                continue
            document = documents[i]
            chunk_index.extend(range(len(result)))
            start.extend(starts[i])
            end.extend(ends[i])
            text.extend(document[a:b] for a, b in zip(starts[i], ends[i], strict=True))
            error.extend([None] * len(result))
        vectors = [np.full((1, self.width), np.nan, np.float32) if isinstance(r, str)
                   else r.astype(np.float32, copy=False) for r in errors]
        return self._table(batch, origin, chunk_index, start, end, text, error, vectors)

    def _table(self, batch: pa.Table, origin: pa.Array, chunk_index: list[Any], start: list[Any], end: list[Any],
               text: list[Any], error: list[Any], vectors: list[np.ndarray]) -> pa.Table:
        flat = np.concatenate(vectors) if vectors else np.zeros((0, self.width), np.float32)
        failed = pa.array([e is not None for e in error], pa.bool_())
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), pa.float32()), self.width,
                                                      mask=failed)
        repeated = batch.select(["source_id", "origin", *self.options.carry_columns]).take(origin)
        table = pa.table({
            "source_id": repeated.column("source_id"),
            "chunk_index": pa.array(chunk_index, pa.int32()),
            "start": pa.array(start, pa.int64()),
            "end": pa.array(end, pa.int64()),
            "text": pa.array(text, pa.string()),
            "embedding": embedding,
            "error": pa.array(error, pa.string()),
            "origin": repeated.column("origin"),
        })
        for name in self.options.carry_columns:
            table = table.append_column(name, repeated.column(name))
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
