"""Ray Data wiring: read document records, prepare them on CPU tasks, embed (and write) them on an actor pool.

Ray does the scheduling, streaming, back-pressure and retries (a crashed actor is restarted and its batch
re-run); this module chains ``map_batches`` calls around the stages in :mod:`jinav3.distributed.stages`, and
:func:`index_corpus` adds the job around them: the input count, resuming, the finished marker and the summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jinav3.distributed.options import IndexOptions
from jinav3.distributed.output import OutputFolder
from jinav3.distributed.reading import (
    check_columns,
    count_documents,
    read_documents,
    records_from_table,
)
from jinav3.distributed.stages import EmbedActor, WritingEmbedActor, prepare_batch
from jinav3.errors import InvalidInputError

if TYPE_CHECKING:
    import ray.data

__all__ = ["IndexSummary", "chunk_dataset", "index_corpus", "read_documents", "summarize"]


def _ray() -> Any:
    try:
        import ray
        import ray.data  # the Data library is a separate extra of ray
    except ImportError as exc:
        raise ImportError(f"jinav3.distributed needs Ray Data: pip install -e 'shared_core[ray]' (in a "
                         f"clone of the jinav3 repository; {exc})") from None
    return ray


def _check_columns(dataset: ray.data.Dataset, options: IndexOptions) -> None:
    schema = dataset.schema()
    if schema is None:
        return  # an empty dataset: nothing to check, nothing to do
    names = list(schema.names)
    wanted = [("id", options.id_column), ("text", options.text_column), *(("carry", c) for c in options.carry_columns)]
    for role, name in wanted:
        if name not in names:
            raise InvalidInputError(f"the documents have no {role} column {name!r} (columns: {', '.join(names)}); "
                                    "choose it with id_column=/text_column= (--id-column/--text-column)")


def _records(dataset: ray.data.Dataset, options: IndexOptions) -> ray.data.Dataset:
    """Document records of a Dataset you built (origins stay null)."""
    _check_columns(dataset, options)
    return dataset.map_batches(records_from_table, batch_format="pyarrow", fn_kwargs={"options": options},
                               num_cpus=1)


def _embedded(records: ray.data.Dataset, options: IndexOptions, actor: type, actor_kwargs: dict[str, Any],
              done: tuple[Any, Any] | None = None) -> ray.data.Dataset:
    ray = _ray()
    low, high = options.actor_pool
    prepared = records.map_batches(prepare_batch, batch_format="pyarrow", batch_size=options.batch_size,
                                   fn_kwargs={"options": options, "done": done}, num_cpus=1)
    return prepared.map_batches(
        actor, batch_format="pyarrow", batch_size=options.batch_size,
        fn_constructor_kwargs={"options": options, **actor_kwargs},
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high),
        num_gpus=options.gpus_per_actor, num_cpus=options.cpus_per_actor,
    )


def chunk_dataset(dataset: ray.data.Dataset, options: IndexOptions) -> ray.data.Dataset:
    """The lazy Dataset of chunk rows for ``dataset``'s documents (columns ``options.id_column`` and
    ``options.text_column``): ``source_id``, ``chunk_index``, ``start``, ``end``, ``text``, ``embedding``
    (fixed-size float32 list), ``error`` (null unless the document failed; then it is the only row of that
    document, without a vector) and ``origin`` (null here; file and line for :func:`index_corpus`), plus
    ``options.carry_columns``."""
    return _embedded(_records(dataset, options), options, EmbedActor, {})


@dataclass(frozen=True)
class IndexSummary:
    """What happened to every document: ``documents_in == documents_indexed + documents_failed``.

    ``errors`` holds ``(source_id, origin, message)`` of every failed document (``origin`` names the file and
    line or row). ``busy_seconds`` is the span from the first batch's start to the last batch's end in this run:
    the wall time without Ray's start-up and the model loads."""

    output: str
    documents_in: int
    documents_indexed: int
    documents_failed: int
    chunks: int
    errors: list[tuple[str | None, str | None, str]]
    documents_skipped: int = 0
    busy_seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        return self.documents_in == self.documents_indexed + self.documents_failed


def summarize(output: str | os.PathLike[str], documents_in: int) -> IndexSummary:
    """Count what the output folder holds (reading only the small columns back)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = OutputFolder(output)
    parts = folder.parts()
    if not parts:
        return IndexSummary(folder.location, documents_in, 0, 0, 0, [])
    table = pq.read_table(parts, columns=["source_id", "chunk_index", "error", "origin"],
                          filesystem=folder.filesystem)
    failed = table.filter(pc.is_valid(table.column("error")))
    good = table.filter(pc.is_null(table.column("error")))
    firsts = pc.sum(pc.equal(good.column("chunk_index"), 0)).as_py() or 0
    errors = list(zip(*(failed.column(c).to_pylist() for c in ("source_id", "origin", "error")), strict=True))
    return IndexSummary(folder.location, documents_in, firsts, failed.num_rows, good.num_rows, errors)


def index_corpus(
    source: ray.data.Dataset | str | os.PathLike[str] | list[str],
    output: str | os.PathLike[str],
    options: IndexOptions,
    *,
    overwrite: bool = False,
    resume: bool = False,
) -> IndexSummary:
    """Chunk and embed a corpus on the current Ray cluster (``ray.init`` first, or one starts locally) into
    Parquet parts in the folder ``output``, then mark it finished (``_SUCCESS``) if every document is
    accounted for. ``resume=True`` continues an interrupted job in the same folder, skipping documents it
    already wrote (same settings required; needs files, not a Dataset); ``overwrite=True`` starts afresh."""
    ray = _ray()
    if overwrite and resume:
        raise InvalidInputError("choose resume=True (continue the job) or overwrite=True (start again), not both")
    folder = OutputFolder(output)
    if not folder.is_empty() and not (overwrite or resume):
        raise InvalidInputError(f"output folder {folder.location} is not empty; resume=True (--resume) continues "
                                "an interrupted job there, overwrite=True (--overwrite) starts again, or choose "
                                "another folder")
    if isinstance(source, ray.data.Dataset):
        if resume:
            raise InvalidInputError("resume=True needs the document files (it finds each document by its id or "
                                    "file and line); pass paths instead of a Dataset")
        documents_in = source.count()
        records = _records(source, options)
    else:
        paths = [os.fspath(p) for p in source] if isinstance(source, list) else [os.fspath(source)]
        check_columns(paths, options)
        documents_in = count_documents(paths, options)
        records = read_documents(paths, options)
    if overwrite:
        folder.clear()
    folder.start(options, resume=resume)
    done = None
    if resume:
        written_ids, written_origins = folder.done()
        done = (ray.put(written_ids), ray.put(written_origins))
    reports = _embedded(records, options, WritingEmbedActor, {"folder": folder}, done)
    batches = list(reports.iter_batches(batch_format="pyarrow", batch_size=None)) if documents_in else []
    summary = summarize(folder.location, documents_in)
    busy, processed = 0.0, 0
    if batches:
        report = pa.concat_tables(batches)
        busy = max(report.column("finished").to_pylist()) - min(report.column("started").to_pylist())
        processed = sum(report.column("documents").to_pylist())
    summary = IndexSummary(**{**summary.__dict__, "documents_skipped": documents_in - processed,
                              "busy_seconds": busy})
    if summary.balanced:
        folder.finish({"documents_in": summary.documents_in, "documents_indexed": summary.documents_indexed,
                       "documents_failed": summary.documents_failed, "chunks": summary.chunks})
    return summary
