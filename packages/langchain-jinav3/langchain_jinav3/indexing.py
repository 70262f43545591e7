"""Keep a LangChain vector store in sync with late-chunked documents: LangChain's ``index()``, exact vectors.

``langchain_core.indexing.index()`` is LangChain's way to sync a store (a RecordManager remembers what was written;
unchanged documents are skipped, vanished ones deleted). With late chunks it goes wrong twice: it rebuilds every
Document, so the chunk text loses the vector it carries (:mod:`langchain_jinav3.handoff`; a ``strict_late_chunking``
store refuses the plain texts), and it keys records by text and metadata, so after an edit the chunks whose text did
not change would keep the vectors of the old context.
:func:`index` and :func:`aindex` run that same LangChain function, with the same arguments and results, changing
two things: a chunk's record key covers its document's text, its place and its vector
(:func:`~langchain_jinav3.handoff.context_key`: its seal and metadata), so every chunk of an edited document is
replaced while the other documents are skipped; and the store receives each chunk carrying its vector again. Each
chunk's seal is checked against its text, its vector and its metadata before anything is written.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.indexing import RecordManager
from langchain_core.indexing import aindex as langchain_aindex
from langchain_core.indexing import index as langchain_index
from langchain_core.indexing.api import IndexingResult
from langchain_core.vectorstores import VectorStore

from jinav3 import SEAL_KEY, BrokenSealError, InvalidInputError, check_seal
from langchain_jinav3.handoff import LateChunkText, carried_vector, chunk_id, with_carried

if TYPE_CHECKING:  # annotations only (postponed): no runtime dependency on typing_extensions for Python 3.10
    from typing_extensions import Unpack



class IndexOptions(TypedDict, total=False):
    """The keywords of LangChain's ``index()`` that pass through unchanged (``key_encoder`` is ours)."""

    batch_size: int
    cleanup: Literal["incremental", "full", "scoped_full"] | None
    source_id_key: str | Callable[[Document], str] | None
    cleanup_batch_size: int
    force_update: bool
    upsert_kwargs: dict[str, Any] | None


def index(
    docs_source: BaseLoader | Iterable[Document],
    record_manager: RecordManager,
    vector_store: VectorStore,
    **options: Unpack[IndexOptions],
) -> IndexingResult:
    """``langchain_core.indexing.index()`` for chunks of :class:`JinaV3LateChunkingSplitter`: same arguments and
    result; every stored vector is its chunk's late-chunked vector of its document's current text."""
    sync = _Sync(vector_store, dict(options))
    return langchain_index(docs_source, record_manager, sync.store, key_encoder=sync.key, **options)


async def aindex(
    docs_source: BaseLoader | Iterable[Document] | AsyncIterable[Document],
    record_manager: RecordManager,
    vector_store: VectorStore,
    **options: Unpack[IndexOptions],
) -> IndexingResult:
    """Async :func:`index` (``langchain_core.indexing.aindex()``)."""
    sync = _Sync(vector_store, dict(options))
    return await langchain_aindex(docs_source, record_manager, sync.store, key_encoder=sync.key, **options)


class _Sync:
    """One run: record keys of the chunks, and the chunk behind each key until the store has it."""

    def __init__(self, vector_store: VectorStore, options: dict[str, Any]) -> None:
        if "key_encoder" in options:
            raise InvalidInputError(
                "langchain_jinav3.index() sets key_encoder itself: its keys cover each chunk's document text, place "
                "and vector, so that an edited document's chunks are all replaced"
            )
        if not isinstance(vector_store, VectorStore):
            raise InvalidInputError(
                f"vector_store must be a LangChain VectorStore, got {type(vector_store).__name__}"
            )
        # Weak values: the chunk stays alive in index()'s current batch for exactly as long as it is needed.
        self.chunks: weakref.WeakValueDictionary[str, LateChunkText] = weakref.WeakValueDictionary()
        self.store = _CarryingStore(vector_store, self.chunks)

    def key(self, document: Document) -> str:
        chunk = carried_vector(document.page_content)
        sealed = document.metadata.get(SEAL_KEY)
        if chunk is None:
            raise InvalidInputError(
                f"langchain_jinav3.index() got a Document without a late-chunked vector "
                f"({document.page_content[:40]!r}): "
                + ("its metadata holds a seal, so it is a chunk rebuilt after JinaV3LateChunkingSplitter (by a "
                   "LangChain splitter or cleaner, JSON or a store) that lost its vector; re-run the splitter on "
                   "the source documents and index its chunks as it returns them"
                   if sealed is not None else
                   "pass the chunks of JinaV3LateChunkingSplitter as it returns them; plain documents go through "
                   "langchain_core.indexing.index()")
            )
        if sealed != chunk.seal:
            raise BrokenSealError(
                f"the chunk {document.page_content[:40]!r} has {'no' if sealed is None else 'another'} seal in its "
                f"metadata ({SEAL_KEY!r}) than the vector it carries: its metadata was replaced or copied from "
                "another chunk after JinaV3LateChunkingSplitter. Keep the splitter's metadata key (add your own keys "
                "next to it)."
            )
        check_seal(sealed, what=f"the chunk {document.page_content[:40]!r}", text=str(document.page_content),
                   vector=chunk.embedding, fix="Re-run JinaV3LateChunkingSplitter on the source documents.")
        key = chunk_id(chunk, document.metadata)
        self.chunks[key] = chunk
        return key


class _CarryingStore(VectorStore):
    """The user's store as index() sees it: documents index() rebuilt get their chunk's vector back on the way in;
    everything else goes straight through."""

    def __init__(self, inner: VectorStore, chunks: weakref.WeakValueDictionary[str, LateChunkText]) -> None:
        self.inner = inner
        self.chunks = chunks

    @property
    def embeddings(self) -> Embeddings | None:
        return self.inner.embeddings

    def _carrying(self, documents: list[Document]) -> list[Document]:
        restored = []
        for document in documents:
            chunk = self.chunks.get(str(document.id))
            if chunk is None:  # index() hands over only documents it keyed in this batch
                raise InvalidInputError(f"index() passed an unknown document {document.page_content[:40]!r}")
            restored.append(with_carried(document, chunk))
        return restored

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        return self.inner.add_documents(self._carrying(documents), **kwargs)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        return await self.inner.aadd_documents(self._carrying(documents), **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        return self.inner.delete(ids, **kwargs)

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        return await self.inner.adelete(ids, **kwargs)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return self.inner.similarity_search(query, k=k, **kwargs)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict[Any, Any]] | None = None,
                   **kwargs: Any) -> _CarryingStore:
        raise NotImplementedError("a view of an existing store used during index(); it builds no store")
