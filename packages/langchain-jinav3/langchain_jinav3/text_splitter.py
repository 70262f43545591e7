"""``JinaV3LateChunkingSplitter``: a LangChain ``TextSplitter`` whose chunks carry contextual (late-chunked) vectors.

Late chunking embeds each document whole, once, and gives every chunk the mean of its tokens' vectors, so a chunk
such as "It has three million inhabitants." still knows which city it is about. The chunk boundaries may come
from any LangChain splitter (or the core's sentence/paragraph/token chunkers); only the vectors change.

A ``Document`` cannot hold a vector, so each chunk's ``page_content`` is a string that carries it
(:mod:`langchain_jinav3.handoff`): ``store.add_documents(chunks)`` on any store with a ``JinaV3Embeddings`` of the
same settings stores the late-chunked vectors. ``split_documents_with_embeddings`` returns ``(chunks, vectors)``
for stores that take precomputed vectors (``FAISS.from_embeddings``, ``add_embeddings``...).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter, TextSplitter

from jinav3 import SEAL_KEY, BrokenSealError, Chunk, InvalidInputError, Seal, check_texts
from jinav3.late_chunking.chunking import ChunkerLike
from jinav3.late_chunking.languages import check_language
from jinav3.late_chunking.seal import fingerprint, vector_fingerprint
from langchain_jinav3.embeddings import JinaV3Embeddings
from langchain_jinav3.handoff import Vector, with_late_chunk


def langchain_spans(splitter: TextSplitter, text: str) -> list[tuple[int, int]] | list[str]:
    """``(start, end)`` of each chunk of ``splitter`` where LangChain itself places it (its ``start_index``, which
    knows the splitter's overlap), so text that repeats itself cannot move a chunk onto an earlier copy. When
    LangChain's place does not hold the chunk's text (its offset arithmetic assumes characters; a token
    ``length_function`` can miss), the chunk texts are returned for the core to place
    (:func:`jinav3.spans_from_texts`)."""
    placing = copy.copy(splitter)
    placing._add_start_index = True
    spans: list[tuple[int, int]] = []
    pieces: list[str] = []
    for document in placing.create_documents([text]):
        piece = document.page_content
        if not piece.strip():
            continue
        start = document.metadata["start_index"]
        pieces.append(piece)
        spans.append((start, start + len(piece)))
    if all(start >= 0 and text[start:end] == piece for (start, end), piece in zip(spans, pieces, strict=True)):
        return spans
    return pieces


class JinaV3LateChunkingSplitter(TextSplitter):
    """Split documents at the boundaries of ``chunker`` and embed each chunk in its document's context.

    ``chunker``: ``"sentences"``, ``"paragraphs"``, ``"tokens"`` (windows of ``chunk_size`` model tokens
    overlapping by ``chunk_overlap``), ``"recursive"`` (LangChain's ``RecursiveCharacterTextSplitter`` with this
    splitter's ``chunk_size``, ``chunk_overlap``, ``length_function``, ``keep_separator`` and ``strip_whitespace``),
    any LangChain ``TextSplitter``, a ``jinav3.Chunker`` or a callable returning chunk texts or ``(start, end)``
    spans. The default is ``"sentences"``, or ``"recursive"`` when a ``length_function`` is given (so
    ``from_huggingface_tokenizer(tokenizer, embeddings=..., chunk_size=...)`` measures chunks in that tokenizer's
    tokens). ``language``: the ``"sentences"`` chunker's rules, ``"auto"`` (each document's detected language) or an
    ISO 639 code such as ``"de"``. ``window``/``overlap`` set the macro windows (in tokens) for documents longer
    than the model's context.
    Chunks keep their document's metadata, plus ``start_index`` with ``add_start_index=True`` (LangChain's default
    is False). Empty and whitespace-only chunks are dropped, as LangChain splitters drop empty chunks.
    """

    def __init__(
        self,
        embeddings: JinaV3Embeddings,
        chunker: TextSplitter | ChunkerLike | None = None,
        *,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        language: str = "auto",
        window: int | None = None,
        overlap: int | None = None,
        add_start_index: bool = False,
        **kwargs: Any,
    ) -> None:
        """``kwargs`` are :class:`TextSplitter`'s own (``length_function``, ``keep_separator``,
        ``strip_whitespace``); they shape the ``"recursive"`` chunker."""
        if not isinstance(embeddings, JinaV3Embeddings):
            raise InvalidInputError(
                f"embeddings must be a JinaV3Embeddings (the store's embeddings), got {type(embeddings).__name__}"
            )
        if isinstance(chunker, JinaV3LateChunkingSplitter):
            raise InvalidInputError("chunker cannot be another JinaV3LateChunkingSplitter; pass its chunker")
        super().__init__(chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=add_start_index,
                         **kwargs)
        if chunker is None:
            chunker = "recursive" if "length_function" in kwargs else "sentences"
        if chunker == "recursive":
            chunker = RecursiveCharacterTextSplitter(
                chunk_size=chunk_size, chunk_overlap=chunk_overlap, length_function=self._length_function,
                keep_separator=self._keep_separator, strip_whitespace=self._strip_whitespace,
            )
        self.embeddings = embeddings
        self.chunker = chunker
        self._options: dict[str, Any] = {
            "window": window, "overlap": overlap, "chunk_size": chunk_size, "chunk_overlap": chunk_overlap,
            "language": check_language(language),
        }

    def store_embeddings(self) -> JinaV3Embeddings:
        """The embeddings for the store these chunks go into: a copy of the splitter's with
        ``strict_late_chunking=True`` (same settings and loaded model; the splitter's own object is not changed), so
        a text that reaches the store without its carried, sealed vector is refused instead of embedded plainly."""
        return self.embeddings.model_copy(update={"strict_late_chunking": True})

    def _boundaries(self) -> ChunkerLike | Callable[[str], list[str] | list[tuple[int, int]]]:
        """What the core uses as the chunk boundary source: a LangChain splitter gives its chunks' own places."""
        if isinstance(self.chunker, TextSplitter):
            return functools.partial(langchain_spans, self.chunker)
        return self.chunker

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
        self, texts: Sequence[str], per_text: list[list[Chunk]], metadatas: Sequence[dict[Any, Any]]
    ) -> tuple[list[Document], list[Vector]]:
        """Chunk Documents whose text carries the late-chunked vector, and the vectors as lists."""
        documents: list[Document] = []
        vectors: list[Vector] = []
        space = self.embeddings.vector_space() if any(per_text) else ""
        for text, chunks, metadata in zip(texts, per_text, metadatas, strict=True):
            if SEAL_KEY in metadata:
                raise BrokenSealError(
                    f"the document {text[:40]!r} is already a late-chunked chunk (its metadata holds {SEAL_KEY!r}): "
                    "splitting it again would late-chunk it without its document's context. Split the original "
                    "documents, once."
                )
            document_print = fingerprint(text)  # once per document, not per chunk (what Seal.of would do)
            for chunk in chunks:
                if not chunk.text.strip():
                    continue  # a whitespace-only chunk from a custom chunker: nothing to store
                chunk_metadata = copy.deepcopy(metadata)
                if self._add_start_index:
                    chunk_metadata["start_index"] = chunk.start
                if text[chunk.start:chunk.end] != chunk.text:
                    raise InvalidInputError(f"chunk {chunk.text[:40]!r} is not document[{chunk.start}:{chunk.end}]")
                seal = Seal(space, document_print, chunk.start, chunk.end, fingerprint(chunk.text),
                            vector_fingerprint(chunk.embedding)).encode()
                document = Document(page_content=chunk.text, metadata=chunk_metadata)
                documents.append(with_late_chunk(document, chunk.embedding, seal))
                vectors.append(chunk.embedding.tolist())
        return documents, vectors

    # -- (documents, vectors) for stores that take precomputed vectors -------------------------------------------
    def create_documents_with_embeddings(
        self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None
    ) -> tuple[list[Document], list[Vector]]:
        """Chunks of ``texts`` and their late-chunked vectors."""
        texts = check_texts(texts)
        return self._documents(texts, self._late_chunk(texts), _metadatas(texts, metadatas))

    def split_documents_with_embeddings(self, documents: Iterable[Document]) -> tuple[list[Document], list[Vector]]:
        """Chunks of ``documents`` and their late-chunked vectors, for ``FAISS.from_embeddings(zip(texts, vectors),
        ...)`` or a store's ``add_embeddings``."""
        texts, metadatas = _unpack(documents)
        return self.create_documents_with_embeddings(texts, metadatas)

    async def asplit_documents_with_embeddings(
        self, documents: Iterable[Document]
    ) -> tuple[list[Document], list[Vector]]:
        texts, metadatas = _unpack(documents)
        texts = check_texts(texts)
        return self._documents(texts, await self._alate_chunk(texts), _metadatas(texts, metadatas))

    # -- LangChain's splitter interface: every chunk's text carries its vector -----------------------------------
    def split_text(self, text: str) -> list[str]:
        """Chunk texts of one document, each carrying its late-chunked vector."""
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
        return [document.page_content for document in self.create_documents([text])]

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Chunks of ``documents`` with their metadata; ``add_documents`` stores their late-chunked vectors."""
        texts, metadatas = _unpack(documents)
        return self.create_documents(texts, metadatas)

    def create_documents(self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None) -> list[Document]:
        """Chunks of ``texts`` (all late-chunked in one core call)."""
        return self.create_documents_with_embeddings(texts, metadatas)[0]

    async def atransform_documents(self, documents: Sequence[Document], **kwargs: Any) -> Sequence[Document]:
        """Native async ``transform_documents``."""
        return (await self.asplit_documents_with_embeddings(documents))[0]


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
