"""Ray Data wiring: read documents, prepare them on CPU tasks, embed them on an actor pool, write Parquet.

Ray does the scheduling, streaming, back-pressure and retries (a crashed actor is restarted and its batch
re-run); this module only chains ``map_batches`` calls around the two stages in :mod:`jinav3.distributed.stages`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinav3.distributed.options import IndexOptions
from jinav3.distributed.stages import EmbedActor, prepare_batch
from jinav3.errors import InvalidInputError

if TYPE_CHECKING:
    import ray.data

def _ray() -> Any:
    try:
        import ray
        import ray.data  # the Data library is a separate extra of ray
    except ImportError as exc:
        raise ImportError(f"jinav3.distributed needs Ray Data: pip install 'jinav3[ray]' ({exc})") from None
    return ray


def read_documents(source: str | os.PathLike[str] | list[str]) -> ray.data.Dataset:
    """A Ray Dataset of documents from JSON Lines or Parquet files (a file, a folder of them, or a list): Parquet
    when any file ends in ``.parquet``, else JSON Lines (``.jsonl``, ``.json``, compressed variants)."""
    ray = _ray()
    paths = [os.fspath(p) for p in source] if isinstance(source, list) else [os.fspath(source)]
    if not paths:
        raise InvalidInputError("no document files given")
    names: list[str] = []
    for path in paths:
        if "://" in path:  # s3://, gs://...: trust the name
            names.append(path)
        elif os.path.isdir(path):
            names.extend(str(p) for p in Path(path).iterdir())
        elif os.path.exists(path):
            names.append(path)
        else:
            raise InvalidInputError(f"document source {path!r} does not exist")
    if any(n.endswith(".parquet") for n in names):
        return ray.data.read_parquet(paths)
    return ray.data.read_json(paths)


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


def chunk_dataset(dataset: ray.data.Dataset, options: IndexOptions) -> ray.data.Dataset:
    """The lazy Dataset of chunk rows for ``dataset``'s documents: ``source_id``, ``chunk_index``, ``start``,
    ``end``, ``text``, ``embedding`` (fixed-size float32 list) and ``error`` (null unless the document failed;
    then it is the only row of that document, without a vector), plus ``options.carry_columns``."""
    ray = _ray()
    _check_columns(dataset, options)
    low, high = options.actor_pool
    prepared = dataset.map_batches(prepare_batch, batch_format="pyarrow", batch_size=options.batch_size,
                                   fn_kwargs={"options": options}, num_cpus=1)
    return prepared.map_batches(
        EmbedActor, batch_format="pyarrow", batch_size=options.batch_size,
        fn_constructor_kwargs={"options": options},
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high),
        num_gpus=options.gpus_per_actor, num_cpus=options.cpus_per_actor,
    )


@dataclass(frozen=True)
class IndexSummary:
    """What happened to every document: ``documents_in == documents_indexed + documents_failed``."""

    output: str
    documents_in: int
    documents_indexed: int
    documents_failed: int
    chunks: int
    errors: list[tuple[str | None, str]]  # (source_id, message) of every failed document

    @property
    def balanced(self) -> bool:
        return self.documents_in == self.documents_indexed + self.documents_failed


def summarize(output: str | os.PathLike[str], documents_in: int) -> IndexSummary:
    """Count what a finished run wrote (reading only the small columns back)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(os.fspath(output), columns=["source_id", "chunk_index", "error"])
    failed = table.filter(pc.is_valid(table.column("error")))
    good = table.filter(pc.is_null(table.column("error")))
    firsts = pc.sum(pc.equal(good.column("chunk_index"), 0)).as_py() or 0
    errors = list(zip(failed.column("source_id").to_pylist(), failed.column("error").to_pylist(), strict=True))
    return IndexSummary(os.fspath(output), documents_in, firsts, failed.num_rows, good.num_rows, errors)


def index_corpus(
    source: ray.data.Dataset | str | os.PathLike[str] | list[str],
    output: str | os.PathLike[str],
    options: IndexOptions,
    *,
    overwrite: bool = False,
) -> IndexSummary:
    """Chunk and embed a corpus on the current Ray cluster (``ray.init`` first, or one starts locally) and write
    the chunk rows as Parquet files into the folder ``output``; return the document accounting."""
    ray = _ray()
    dataset = source if isinstance(source, ray.data.Dataset) else read_documents(source)
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InvalidInputError(f"output folder {out} is not empty; choose another or pass overwrite=True")
    documents_in = dataset.count()
    chunks = chunk_dataset(dataset, options)
    from ray.data import SaveMode

    chunks.write_parquet(os.fspath(out), mode=SaveMode.OVERWRITE if overwrite else SaveMode.APPEND)
    if documents_in == 0:
        out.mkdir(parents=True, exist_ok=True)
        return IndexSummary(os.fspath(out), 0, 0, 0, 0, [])
    return summarize(out, documents_in)
