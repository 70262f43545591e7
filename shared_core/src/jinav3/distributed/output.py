"""The output folder of an indexing job: Parquet parts written atomically, the job's settings, a finished marker.

Layout (local folder or object-store prefix)::

    part-<hash>.parquet      chunk rows of one embedded batch; appears whole or not at all
    .part-<hash>.<uuid>.tmp  a part being written (left over only by a crash; removed on the next start)
    _jinav3_job.json         the settings that decide what the rows contain (checked when resuming)
    _SUCCESS                 written last, with the summary: the job finished

Readers (pandas, pyarrow, Spark, DuckDB's ``*.parquet``) skip names starting with ``.`` or ``_``, so a folder
under construction always reads as complete documents only. A part's name is a hash of the documents in it: a
batch that Ray re-runs after an actor crash replaces its own part instead of adding a second copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jinav3.distributed.options import IndexOptions
from jinav3.errors import InvalidInputError

FINISHED = "_SUCCESS"
SETTINGS = "_jinav3_job.json"


def job_settings(options: IndexOptions) -> dict[str, Any]:
    """What decides the content of the rows; a resumed job must use the same."""
    chunker = options.chunker
    if chunker is not None and not isinstance(chunker, str):
        chunker = getattr(chunker, "__qualname__", None) or type(chunker).__qualname__
    return {
        "model": options.model, "task": options.task, "dimensions": options.dimensions, "chunker": chunker,
        "chunk_size": options.chunk_size, "chunk_overlap": options.chunk_overlap, "language": options.language,
        "late_chunking": options.late_chunking, "truncate": options.truncate, "id_column": options.id_column,
        "text_column": options.text_column, "carry_columns": list(options.carry_columns),
    }


class OutputFolder:
    """One job's output folder on any pyarrow file system; picklable, so actors write their own parts."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        location = os.fspath(location)
        self.location = location if "://" in location else os.path.abspath(location)
        self.filesystem, self.path = pafs.FileSystem.from_uri(self.location)

    def _join(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    def _names(self) -> list[str]:
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return [info.base_name for info in self.filesystem.get_file_info(selector)]

    def parts(self) -> list[str]:
        return sorted(self._join(n) for n in self._names() if n.startswith("part-") and n.endswith(".parquet"))

    def is_empty(self) -> bool:
        return not self._names()

    def is_finished(self) -> bool:
        return FINISHED in self._names()

    def clear(self) -> None:
        self.filesystem.delete_dir_contents(self.path, missing_dir_ok=True)

    def start(self, options: IndexOptions, *, resume: bool) -> None:
        """Make the folder ready: record the settings (or, resuming, check them) and drop half-written parts."""
        self.filesystem.create_dir(self.path, recursive=True)
        if self.is_finished():  # it is true again only once this run has accounted for every document
            self.filesystem.delete_file(self._join(FINISHED))
        settings = job_settings(options)
        if resume and SETTINGS in self._names():
            with self.filesystem.open_input_stream(self._join(SETTINGS)) as f:
                before = json.loads(f.read())
            changed = sorted(k for k in settings.keys() | before.keys() if settings.get(k) != before.get(k))
            if changed:
                details = ", ".join(f"{k}: {before.get(k)!r} then, {settings.get(k)!r} now" for k in changed)
                raise InvalidInputError(f"cannot resume into {self.location}: the settings differ from the job "
                                        f"that wrote it ({details}); use the same settings, or another folder")
        self._write_bytes(SETTINGS, json.dumps(settings, indent=1).encode())
        for name in self._names():
            if name.startswith(".") and name.endswith(".tmp"):
                self.filesystem.delete_file(self._join(name))

    def done(self) -> tuple[pa.Array, pa.Array]:
        """Ids already written, and origins of written error rows that have no id (malformed lines)."""
        parts = self.parts()
        if not parts:
            return pa.array([], pa.string()), pa.array([], pa.string())
        table = pq.read_table(parts, columns=["source_id", "origin"], filesystem=self.filesystem)
        no_id = table.filter(pc.is_null(table.column("source_id")))
        return pc.unique(pc.drop_null(table.column("source_id"))), pc.unique(pc.drop_null(no_id.column("origin")))

    def write_part(self, table: pa.Table, key: Callable[[], bytes]) -> str:
        """Write ``table`` as a part named by the hash of ``key()``, atomically: to a hidden name first, then
        moved into place (a rename on local disks and HDFS; on object stores the upload itself is atomic)."""
        name = f"part-{hashlib.blake2b(key(), digest_size=10).hexdigest()}.parquet"
        temporary = self._join(f".{name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, temporary, filesystem=self.filesystem)
        self.filesystem.move(temporary, self._join(name))
        return name

    def finish(self, summary: dict[str, Any]) -> None:
        self._write_bytes(FINISHED, json.dumps(summary, indent=1).encode())

    def finished_summary(self) -> dict[str, Any]:
        with self.filesystem.open_input_stream(self._join(FINISHED)) as f:
            return json.loads(f.read())

    def _write_bytes(self, name: str, data: bytes) -> None:
        temporary = self._join(f".{name}.{uuid.uuid4().hex}.tmp")
        with self.filesystem.open_output_stream(temporary) as f:
            f.write(data)
        self.filesystem.move(temporary, self._join(name))
