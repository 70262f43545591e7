"""``JinaV3DocumentWriter``: after each run the store holds exactly the current chunks of every source it was given.

Why Haystack's ``DocumentWriter`` is not enough: a late-chunked vector depends on the whole source document, so
when one sentence of a document changes, every chunk of it gets a new vector although most chunk texts did not
change. ``DocumentWriter`` only adds or overwrites by id; the chunks it is not given again stay, so the store keeps
stale vectors (unchanged texts, old context) and orphans (chunks the edit removed), and retrieval returns them.

How this writer keeps a store in sync, using only the DocumentStore protocol (``filter_documents``,
``write_documents``, ``delete_documents``), so any store that supports metadata filters works:

- **Source**: the value of ``meta[source_key]`` on each chunk names the document it came from. It must stay the
  same when the document is edited: ``file_path`` (set by Haystack's converters) or an id of your own; splitters'
  ``source_id`` is the parent Document's id, stable only when you give your Documents fixed ids (Haystack's
  default id is a hash of the content, which changes with every edit).
- **Replace**: for every source in the input, the chunks stored for it are looked up by a metadata filter, the
  input's chunks are written (overwriting equal ids), then every stored chunk of that source that is not among them
  is deleted. Other sources are not touched. A run must carry all chunks of each source it carries.
- **Delete**: ``delete_sources`` names sources whose chunks must go (a document removed from the corpus, or one
  that became empty, whose splitter output is nothing). With ``cleanup="full"`` the input is the whole corpus and
  every stored source not in it is deleted (documents without ``meta[source_key]`` are never touched).
- **Seals**: every late-chunked chunk carries a seal of its text, offsets, source and vector; before anything is
  written or deleted, every seal is checked against the chunk as it arrives (a cleaner or splitter placed after
  the late-chunking step is refused), all seals must share one vector space, and the chunks of one source must
  come from one version of it.
- **Ids**: ``sha256(source_key, source, position in the source, content, source fingerprint)``, the fingerprint
  hashing all chunk texts and offsets of the source. Ids are stable across runs of an unchanged source, unique
  within the store, and change for every chunk of an edited source, so no vector of an old context survives
  under a reused id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.document_stores.errors import DocumentStoreError
from haystack.document_stores.types import DocumentStore, DuplicatePolicy

from haystack_integrations.components.embedders.jinav3._component import check_documents
from haystack_integrations.components.embedders.jinav3._seals import check_written
from haystack_integrations.components.embedders.jinav3._sources import group_by_source
from jinav3 import InvalidInputError

logger = logging.getLogger(__name__)

CLEANUPS: tuple[str, ...] = ("incremental", "full")
_PROTOCOL = ("filter_documents", "write_documents", "delete_documents")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, default=str, ensure_ascii=False).encode()).hexdigest()


def chunk_ids(source_key: str, source: Any, chunks: Sequence[Document]) -> list[str]:
    """Ids of one source's chunks, given in split order (see the module doc)."""
    fingerprint = _digest([[chunk.content, chunk.meta.get("split_idx_start")] for chunk in chunks])
    return [_digest([source_key, source, position, chunk.content, fingerprint])
            for position, chunk in enumerate(chunks)]


@dataclass(frozen=True)
class SyncPlan:
    """What one run writes (``documents``, with their new ids), which sources it covers (``sources``), and whether
    every other source in the store goes (``full``)."""

    source_key: str
    documents: list[Document]
    sources: list[Any]
    full: bool

    def lookup(self) -> dict[str, Any] | None:
        """The filter that finds the stored chunks this run may replace: all documents for a full sync."""
        return None if self.full else {"field": f"meta.{self.source_key}", "operator": "in", "value": self.sources}

    def stale(self, stored: Sequence[Document], store: Any) -> list[str]:
        """Ids of the stored chunks that must go: those of covered (full sync: of any) sources not written now."""
        keep = {doc.id for doc in self.documents}
        covered = set(self.sources)
        stale = []
        for doc in stored:
            source = doc.meta.get(self.source_key)
            if not self.full and source not in covered:
                raise DocumentStoreError(
                    f"{type(store).__name__}.filter_documents ignored the filter on meta.{self.source_key} (it "
                    f"returned document {doc.id} of source {source!r}); JinaV3DocumentWriter needs a store that "
                    "applies Haystack metadata filters ('in'), else it would delete other sources' chunks"
                )
            if source is not None and doc.id not in keep:
                stale.append(doc.id)
        return stale


def _source_of(doc: Document, source_key: str) -> Hashable:
    source = doc.meta.get(source_key)
    if source is None or not isinstance(source, Hashable):
        raise InvalidInputError(
            f"chunk {doc.id} has {'no' if source is None else f'an unusable ({type(source).__name__})'} "
            f"meta[{source_key!r}]: JinaV3DocumentWriter(source_key={source_key!r}) needs every chunk to name its "
            "source document with a value that stays the same across edits (e.g. 'file_path' from a converter, or "
            "an id you set in meta before splitting)"
        )
    return source


def plan_sync(documents: Sequence[Document], source_key: str, delete_sources: Sequence[Any] | None,
              full: bool) -> SyncPlan:
    """Group the chunks by source, give them their ids, and list the sources this run covers."""
    for doc in documents:
        _source_of(doc, source_key)
    written: list[Document] = []
    sources: list[Any] = []
    for group in group_by_source(documents, source_key):
        chunks = [documents[i] for i in group]
        source = chunks[0].meta[source_key]
        parents = {chunk.meta["source_id"] for chunk in chunks if chunk.meta.get("source_id") is not None}
        if len(parents) > 1:
            raise InvalidInputError(
                f"{len(parents)} different documents (source_id {', '.join(sorted(map(str, parents))[:3])}) share "
                f"meta[{source_key!r}] = {source!r}, so each would replace the other's chunks; give every document "
                "its own value (or pass one version of it per run)"
            )
        sources.append(source)
        written += [replace(chunk, id=new_id) for chunk, new_id in zip(chunks, chunk_ids(source_key, source, chunks),
                                                                      strict=True)]
    removed = list(dict.fromkeys(delete_sources or []))
    both = [source for source in removed if source in set(sources)]
    if both:
        raise InvalidInputError(
            f"source(s) {', '.join(map(repr, both))} are in delete_sources but also have chunks in documents; "
            "either re-index them (leave them out of delete_sources) or delete them (leave their chunks out)"
        )
    return SyncPlan(source_key, written, sources + removed, full)


@component
class JinaV3DocumentWriter:
    """Write late-chunked (or any) chunk Documents so that each source's stored chunks are exactly its current ones.

    ```python
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.writers.jinav3 import JinaV3DocumentWriter

    writer = JinaV3DocumentWriter(InMemoryDocumentStore(), source_key="file_path")
    writer.run(documents=chunks)                          # replaces the stored chunks of these files
    writer.run(documents=[], delete_sources=["old.txt"])  # a file that left the corpus
    ```
    """

    def __init__(
        self,
        document_store: DocumentStore,
        *,
        source_key: str,
        cleanup: Literal["incremental", "full"] = "incremental",
    ) -> None:
        """
        :param document_store: Any Haystack DocumentStore that applies metadata filters.
        :param source_key: Meta field naming each chunk's source document, stable across edits (``file_path``, an
            id of your own, or ``source_id`` when your Documents have fixed ids).
        :param cleanup: ``"incremental"``: the sources in each run (and ``delete_sources``) are synced, others are
            left alone. ``"full"``: each run carries the whole corpus; stored sources not in it are deleted.
        """
        missing = [name for name in _PROTOCOL if not callable(getattr(document_store, name, None))]
        if missing:
            raise TypeError(
                f"document_store must be a Haystack DocumentStore; {type(document_store).__name__} has no "
                f"{', '.join(missing)}"
            )
        if not isinstance(source_key, str) or not source_key or source_key.startswith("meta."):
            raise InvalidInputError(
                f"source_key must name a meta field (e.g. 'file_path', without 'meta.'), got {source_key!r}"
            )
        if cleanup not in CLEANUPS:
            raise InvalidInputError(f"unknown cleanup {cleanup!r}; use one of {', '.join(map(repr, CLEANUPS))}")
        self.document_store = document_store
        self.source_key = source_key
        self.cleanup = cleanup

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"document_store": type(self.document_store).__name__, "cleanup": self.cleanup}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store, source_key=self.source_key,
                               cleanup=self.cleanup)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JinaV3DocumentWriter:
        return default_from_dict(cls, data)

    def _plan(self, documents: Any, delete_sources: Any) -> SyncPlan:
        if delete_sources is not None and (isinstance(delete_sources, str) or not isinstance(delete_sources, list)):
            raise TypeError(f"delete_sources must be a list of source values, got {type(delete_sources).__name__}")
        docs = check_documents(documents, "JinaV3DocumentWriter")
        check_written(docs, component="JinaV3DocumentWriter", source_key=self.source_key)
        return plan_sync(docs, self.source_key, delete_sources, self.cleanup == "full")

    def _filter_failed(self, exc: Exception) -> DocumentStoreError:
        return DocumentStoreError(
            f"{type(self.document_store).__name__} could not filter documents by meta.{self.source_key} "
            f"({type(exc).__name__}: {exc}); JinaV3DocumentWriter finds a source's previous chunks with a metadata "
            "filter, so it needs a store that supports Haystack filters (e.g. InMemoryDocumentStore, Qdrant, "
            "pgvector, Elasticsearch)"
        )

    @staticmethod
    def _result(written: int, deleted: list[str]) -> dict[str, int]:
        if deleted:
            logger.info("JinaV3DocumentWriter deleted {count} chunks of edited or removed sources", count=len(deleted))
        return {"documents_written": written, "documents_deleted": len(deleted)}

    @component.output_types(documents_written=int, documents_deleted=int)
    def run(self, documents: list[Document], delete_sources: list[Any] | None = None) -> dict[str, int]:
        """Sync the sources of ``documents`` (and ``delete_sources``) in the store; returns how many chunks were
        written and how many stored chunks were deleted."""
        plan = self._plan(documents, delete_sources)
        if not plan.sources and not plan.full:
            return self._result(0, [])
        try:
            stored = self.document_store.filter_documents(filters=plan.lookup())
        except Exception as exc:  # any store's own error type: say what the writer needs
            raise self._filter_failed(exc) from exc
        stale = plan.stale(stored, self.document_store)
        written = self.document_store.write_documents(plan.documents, policy=DuplicatePolicy.OVERWRITE) \
            if plan.documents else 0
        if stale:  # after writing: a reader never sees a source with no chunks at all
            self.document_store.delete_documents(stale)
        return self._result(written, stale)

    @component.output_types(documents_written=int, documents_deleted=int)
    async def run_async(self, documents: list[Document], delete_sources: list[Any] | None = None) -> dict[str, int]:
        """Same as :meth:`run`, with the store's async methods."""
        missing = [name for name in _PROTOCOL if not callable(getattr(self.document_store, f"{name}_async", None))]
        if missing:
            raise TypeError(f"Document store {type(self.document_store).__name__} does not provide async support "
                            f"({', '.join(f'{name}_async' for name in missing)}); use run()")
        plan = self._plan(documents, delete_sources)
        if not plan.sources and not plan.full:
            return self._result(0, [])
        try:
            stored = await self.document_store.filter_documents_async(filters=plan.lookup())  # type: ignore[attr-defined]
        except Exception as exc:
            raise self._filter_failed(exc) from exc
        stale = plan.stale(stored, self.document_store)
        written = await self.document_store.write_documents_async(  # type: ignore[attr-defined]
            plan.documents, policy=DuplicatePolicy.OVERWRITE) if plan.documents else 0
        if stale:
            await self.document_store.delete_documents_async(stale)  # type: ignore[attr-defined]
        return self._result(written, stale)

    def close(self) -> None:
        """Release the store's resources, as ``DocumentWriter`` does."""
        if hasattr(self.document_store, "close"):
            self.document_store.close()
