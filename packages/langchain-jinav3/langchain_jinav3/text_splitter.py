"""``JinaV3LateChunkingSplitter``: a LangChain ``TextSplitter`` whose chunks carry contextual (late-chunked) vectors.

Late chunking embeds each document whole, once, and gives every chunk the mean of its tokens' vectors, so a chunk
such as "It has three million inhabitants." still knows which city it is about. The chunk boundaries may come
from any LangChain splitter (or the core's sentence/paragraph/token chunkers); only the vectors change.

A ``Document`` cannot hold a vector, so the vectors reach a store in one of two ways:

* ``split_documents_with_embeddings`` returns ``(chunks, vectors)`` for stores that accept precomputed vectors
  (``FAISS.from_embeddings``, ``add_embeddings`` of PGVector, Elasticsearch, ...);
* every other entry point (``split_documents``, ``transform_documents``, ``create_documents``, ``split_text``)
  leaves the vectors with the bound :class:`JinaV3Embeddings`, whose ``embed_documents`` hands them out again
  when a store adds the chunks, so ``store.add_documents(chunks)`` stores the late-chunked vectors on any store.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from jinav3 import Chunk, InvalidInputError, check_texts
from jinav3.chunking import ChunkerLike
from langchain_jinav3.embeddings import JinaV3Embeddings
from langchain_jinav3.handoff import Vector


class JinaV3LateChunkingSplitter(TextSplitter):
    """Split documents at the boundaries of ``chunker`` and embed each chunk in its document's context.

    ``chunker``: ``"sentences"`` (default), ``"paragraphs"``, ``"tokens"`` (windows of ``chunk_size`` model
    tokens overlapping by ``chunk_overlap``), any LangChain ``TextSplitter`` (its chunk texts are located in the
    document), a ``jinav3.Chunker`` or a callable returning chunk texts or ``(start, end)`` spans.
    ``window``/``overlap`` set the macro windows (in tokens) for documents longer than the model's context.
    Chunks keep their document's metadata plus ``start_index`` (the chunk's first character in the document).
    Documents that are empty or whitespace-only have no chunks, as with every LangChain splitter.
    """

    def __init__(
        self,
        embeddings: JinaV3Embeddings,
        chunker: TextSplitter | ChunkerLike = "sentences",
        *,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        window: int | None = None,
        overlap: int | None = None,
        add_start_index: bool = True,
    ) -> None:
        if not isinstance(embeddings, JinaV3Embeddings):
            raise InvalidInputError(
                f"embeddings must be a JinaV3Embeddings (the store's embeddings), got {type(embeddings).__name__}"
            )
        if isinstance(chunker, JinaV3LateChunkingSplitter):
            raise InvalidInputError("chunker cannot be another JinaV3LateChunkingSplitter; pass its chunker")
        super().__init__(chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=add_start_index)
        self.embeddings = embeddings
        self.chunker = chunker
        self._options: dict[str, Any] = {
            "window": window, "overlap": overlap, "chunk_size": chunk_size, "chunk_overlap": chunk_overlap
        }

    def _boundaries(self) -> ChunkerLike | Callable[[str], list[str]]:
        """What the core uses as the chunk boundary source: a LangChain splitter becomes its ``split_text``."""
        return self.chunker.split_text if isinstance(self.chunker, TextSplitter) else self.chunker

    # -- late chunking, sync and async -------------------------------------------------------------------------
    def _late_chunk(self, texts: Sequence[str]) -> list[list[Chunk]]:
        todo = _non_empty(texts)
        chunks = self.embeddings.late_chunk([texts[i] for i in todo], self._boundaries(), **self._options)
        return _spread(len(texts), todo, chunks)

    async def _alate_chunk(self, texts: Sequence[str]) -> list[list[Chunk]]:
        todo = _non_empty(texts)
        chunks = await self.embeddings.alate_chunk([texts[i] for i in todo], self._boundaries(), **self._options)
        return _spread(len(texts), todo, chunks)

    def _documents(
        self, per_text: list[list[Chunk]], metadatas: Sequence[dict[Any, Any]]
    ) -> tuple[list[Document], list[Vector]]:
        documents: list[Document] = []
        vectors: list[Vector] = []
        for chunks, metadata in zip(per_text, metadatas, strict=True):
            for chunk in chunks:
                chunk_metadata = copy.deepcopy(metadata)
                if self._add_start_index:
                    chunk_metadata["start_index"] = chunk.start
                documents.append(Document(page_content=chunk.text, metadata=chunk_metadata))
                vectors.append(chunk.embedding.tolist())
        return documents, vectors

    # -- (documents, vectors) for stores that take precomputed vectors -------------------------------------------
    def create_documents_with_embeddings(
        self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None
    ) -> tuple[list[Document], list[Vector]]:
        """Chunks of ``texts`` and their late-chunked vectors (nothing is left for ``embed_documents``)."""
        return self._documents(self._late_chunk(check_texts(texts)), _metadatas(texts, metadatas))

    def split_documents_with_embeddings(self, documents: Iterable[Document]) -> tuple[list[Document], list[Vector]]:
        """Chunks of ``documents`` and their late-chunked vectors, for ``FAISS.from_embeddings(zip(texts, vectors),
        ...)`` or a store's ``add_embeddings``. Nothing is left for ``embed_documents``."""
        texts, metadatas = _unpack(documents)
        return self.create_documents_with_embeddings(texts, metadatas)

    async def asplit_documents_with_embeddings(
        self, documents: Iterable[Document]
    ) -> tuple[list[Document], list[Vector]]:
        texts, metadatas = _unpack(documents)
        return self._documents(await self._alate_chunk(check_texts(texts)), _metadatas(texts, metadatas))

    # -- LangChain's splitter interface: vectors are left for embed_documents -----------------------------------
    def split_text(self, text: str) -> list[str]:
        """Chunk texts of one document; their late-chunked vectors wait for ``embed_documents``."""
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
        documents = self.create_documents([text])
        return [document.page_content for document in documents]

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Chunks of ``documents`` with their metadata; their vectors wait for ``embed_documents``."""
        texts, metadatas = _unpack(documents)
        return self.create_documents(texts, metadatas)

    def create_documents(self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None) -> list[Document]:
        """Chunks of ``texts`` (all late-chunked in one core call); their vectors wait for ``embed_documents``."""
        documents, vectors = self.create_documents_with_embeddings(texts, metadatas)
        self.embeddings.register_late_chunks([d.page_content for d in documents], vectors)
        return documents

    async def atransform_documents(self, documents: Sequence[Document], **kwargs: Any) -> Sequence[Document]:
        """Native async ``transform_documents``; the vectors wait for ``(a)embed_documents``."""
        chunks, vectors = await self.asplit_documents_with_embeddings(documents)
        self.embeddings.register_late_chunks([d.page_content for d in chunks], vectors)
        return chunks


def _metadatas(texts: Sequence[str], metadatas: Sequence[dict[Any, Any]] | None) -> list[dict[Any, Any]]:
    if metadatas is None:
        return [{} for _ in texts]
    if len(metadatas) != len(texts):
        raise InvalidInputError(f"got {len(metadatas)} metadata dicts for {len(texts)} texts")
    return list(metadatas)


def _unpack(documents: Iterable[Document]) -> tuple[list[str], list[dict[Any, Any]]]:
    docs = list(documents)
    for i, document in enumerate(docs):
        if not isinstance(document, Document):
            raise InvalidInputError(f"documents[{i}] must be a langchain Document, got {type(document).__name__}")
    return [d.page_content for d in docs], [d.metadata for d in docs]


def _non_empty(texts: Sequence[str]) -> list[int]:
    """Positions of the texts that have something to chunk."""
    return [i for i, text in enumerate(texts) if text.strip()]


def _spread(count: int, positions: list[int], chunks: list[list[Chunk]]) -> list[list[Chunk]]:
    """Per input text, its chunks (none for the empty texts that were not sent to the core)."""
    per_text: list[list[Chunk]] = [[] for _ in range(count)]
    for position, found in zip(positions, chunks, strict=True):
        per_text[position] = found
    return per_text
