"""``JinaV3LateChunkingSplitter``: full Documents in, chunk Documents with contextual embeddings out.

Each source document is embedded once, whole; every chunk's vector is the mean of its own tokens' vectors from that
pass, so a chunk such as "It hosts several universities" still knows which city it is about. An indexing pipeline is
``converter → JinaV3LateChunkingSplitter → DocumentWriter`` with no document embedder.

Chunk boundaries come from the core's chunkers (``sentences``, ``paragraphs``, ``tokens``) or from any Haystack
splitter component passed as ``document_splitter`` (e.g. ``DocumentSplitter``): then the output is exactly that
splitter's output (same contents, meta and ids) with ``embedding`` added.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.core.serialization import component_to_dict
from haystack.utils import Secret
from haystack.utils.deserialization import deserialize_component_inplace
from tqdm import tqdm

from haystack_integrations.components.embedders.jinav3._component import (
    JinaV3Component,
    batches,
    check_batch_size,
    check_documents,
    default_api_key,
    restore_secrets,
)
from haystack_integrations.components.embedders.jinav3._seals import carries_late_chunking, sealed
from haystack_integrations.components.embedders.jinav3._sources import is_chunk, spans_in_source
from jinav3 import InvalidInputError, ParagraphChunker, SentenceChunker, Span
from jinav3.usage import TokenUsage

logger = logging.getLogger(__name__)

CHUNKERS: tuple[str, ...] = ("sentences", "paragraphs", "tokens")


@component
class JinaV3LateChunkingSplitter(JinaV3Component):
    """Split Documents into chunks and give every chunk a late-chunked (contextual) jina-embeddings-v3 vector.

    ```python
    from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter

    splitter = JinaV3LateChunkingSplitter(chunker="sentences", min_chars=40, dimensions=256)
    chunks = splitter.run(documents=[Document(content=long_text)])["documents"]   # each with .embedding
    ```

    Output meta follows ``DocumentSplitter``: the source's meta plus ``source_id``, ``page_number``, ``split_id``
    and ``split_idx_start``; ids are what the same chunks would get without an embedding.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str = "local",
        api_key: Secret = default_api_key(),  # noqa: B008 (Haystack's convention for secrets)
        task: str | None = "retrieval.passage",
        dimensions: int | None = None,
        chunker: Literal["sentences", "paragraphs", "tokens"] = "sentences",
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        min_chars: int = 0,
        language: str = "auto",
        document_splitter: Any | None = None,
        window: int | None = None,
        overlap: int | None = None,
        normalized: bool = True,
        batch_size: int = 8,
        progress_bar: bool = True,
        backend_options: dict[str, Any] | None = None,
        base_url: str | None = None,
        embedding_type: str = "float",
    ) -> None:
        """
        :param model: Folder or hub id (local) or API model name; None = jina-embeddings-v3 for the backend.
        :param backend: ``"local"`` or ``"api"``.
        :param api_key: Used only with ``backend="api"``; default reads ``JINA_API_KEY`` / ``JINAAI_API_KEY``.
        :param task: LoRA task for the chunks (``retrieval.passage`` pairs with a ``retrieval.query`` text embedder).
        :param dimensions: Matryoshka size (trained: 32…1024); None = full width.
        :param chunker: ``sentences`` (multilingual), ``paragraphs`` (blank lines) or ``tokens`` (windows of
            ``chunk_size`` model tokens sharing ``chunk_overlap``). Ignored when ``document_splitter`` is given.
        :param chunk_size: Tokens per chunk for ``chunker="tokens"``.
        :param chunk_overlap: Tokens shared by neighbouring chunks for ``chunker="tokens"``.
        :param min_chars: For ``sentences``/``paragraphs``: pieces shorter than this join the next one, so
            headings and fragments do not become chunks of their own.
        :param language: For ``sentences``: ``auto`` (each document's detected language) or an ISO 639 code such
            as ``de``; it picks the abbreviations and rules (see ``jinav3.SentenceChunker``).
        :param document_splitter: A Haystack splitter component (``run(documents=...) -> {"documents": ...}`` with
            ``source_id``/``split_idx_start`` meta, e.g. ``DocumentSplitter``) that decides the chunks instead.
        :param window: Macro-window size in tokens for sources longer than the context (None = the model's).
        :param overlap: Tokens shared by neighbouring macro windows (None = the core's default).
        :param normalized: L2-normalise after truncation to ``dimensions``.
        :param batch_size: Source documents per core call.
        :param progress_bar: Show a progress bar over the batches.
        :param backend_options: Further settings for the core backend (see ``JinaV3TextEmbedder``).
        :param base_url: API backend: the Jina API root or a ``jinav3 serve`` server.
        :param embedding_type: ``"float"``, ``"binary"`` or ``"ubinary"`` (see ``JinaV3TextEmbedder``).
        """
        self._init_backend(model, backend, api_key, task, dimensions, backend_options, base_url, embedding_type)
        if chunker not in CHUNKERS:
            raise InvalidInputError(f"unknown chunker {chunker!r}; use one of {', '.join(map(repr, CHUNKERS))}")
        if document_splitter is not None and not callable(getattr(document_splitter, "run", None)):
            raise TypeError(
                f"document_splitter must be a Haystack splitter component, got {type(document_splitter).__name__}"
            )
        if chunker == "tokens" and not 0 <= chunk_overlap < chunk_size:
            raise InvalidInputError(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap} for {chunk_size}")
        self.chunker = chunker
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.min_chars = min_chars
        self.language = SentenceChunker(language=language).language  # checked by the core now, not at run time
        self.document_splitter = document_splitter
        self.window = window
        self.overlap = overlap
        self.normalized = normalized
        self.batch_size = check_batch_size(batch_size)
        self.progress_bar = progress_bar

    def warm_up(self) -> None:
        """Build the core embedder (loads a local model) and warm up the nested splitter, if any. Idempotent."""
        if self.document_splitter is not None and hasattr(self.document_splitter, "warm_up"):
            self.document_splitter.warm_up()
        JinaV3Component.warm_up(self)  # zero-argument super() breaks: @component rebuilds the class

    def to_dict(self) -> dict[str, Any]:
        splitter = self.document_splitter
        return default_to_dict(
            self,
            **self._backend_params(),
            chunker=self.chunker,
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            min_chars=self.min_chars,
            language=self.language,
            document_splitter=None if splitter is None else component_to_dict(splitter, "document_splitter"),
            window=self.window,
            overlap=self.overlap,
            normalized=self.normalized,
            batch_size=self.batch_size,
            progress_bar=self.progress_bar,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JinaV3LateChunkingSplitter:
        params = data.get("init_parameters", {})
        if params.get("document_splitter") is not None:
            deserialize_component_inplace(params, key="document_splitter")
        return default_from_dict(cls, restore_secrets(data))

    # -- splitting ----------------------------------------------------------------------------------------------
    def _core_chunker(self) -> Any:
        if self.chunker == "sentences":
            return SentenceChunker(min_chars=self.min_chars, language=self.language)
        if self.chunker == "paragraphs":
            return ParagraphChunker(min_chars=self.min_chars)
        return "tokens"

    def _split(self, doc: Document) -> tuple[list[Document], list[Span]]:
        """One source's chunk Documents (no embedding yet, so their ids are those of a plain split) and spans.
        A splitter's chunk with no text at all has nothing to pool: it is passed on without embedding (warning);
        a whitespace-only chunk is part of the source and gets the core's vector for its span."""
        text = doc.content or ""
        if self.document_splitter is not None:
            chunks = list(self.document_splitter.run(documents=[doc])["documents"])
            empty = [chunk.id for chunk in chunks if not chunk.content]
            if empty:
                logger.warning("The splitter made {count} chunks with no text; they get no embedding: {ids}",
                               count=len(empty), ids=", ".join(empty[:5]))
            return chunks, (spans_in_source(text, [c for c in chunks if c.content]) if len(empty) < len(chunks)
                            else [])
        spans = self.embedder.chunk_spans(text, self._core_chunker(), chunk_size=self.chunk_size,
                                          chunk_overlap=self.chunk_overlap)
        chunks = []
        for split_id, (start, end) in enumerate(spans):
            meta = copy.deepcopy(doc.meta)
            meta["source_id"] = doc.id
            meta["page_number"] = 1 + text.count("\f", 0, start)
            meta["split_id"] = split_id
            meta["split_idx_start"] = start
            chunks.append(Document(content=text[start:end], meta=meta))
        return chunks, spans

    def _plan(self, documents: Any) -> list[tuple[Document, list[Document], list[Span]]]:
        """Split every non-empty source; an empty one is skipped with a warning, as ``DocumentSplitter`` does."""
        planned = []
        for doc in check_documents(documents, "JinaV3LateChunkingSplitter"):
            if is_chunk(doc) or carries_late_chunking(doc):
                raise InvalidInputError(
                    f"JinaV3LateChunkingSplitter: document {doc.id} is already a chunk of document "
                    f"{doc.meta.get('source_id')} (it has split meta or a late-chunking seal); splitting it again "
                    "would late-chunk each piece without its document's context. Give this splitter the unsplit "
                    "documents (its document_splitter=... decides the chunks), or put "
                    "JinaV3DocumentEmbedder(late_chunking=True) after your splitter instead"
                )
            if doc.content is None:
                raise ValueError(f"JinaV3LateChunkingSplitter needs text documents; document {doc.id} has no content")
            if not doc.content.strip():
                logger.warning("Document ID {doc_id} has no text. Skipping this document.", doc_id=doc.id)
                continue
            chunks, spans = self._split(doc)
            if spans:
                planned.append((doc, chunks, spans))
        return planned

    def _parts(self, planned: list[Any]) -> Any:
        return tqdm(batches(planned, self.batch_size), disable=not self.progress_bar, desc="Late chunking")

    def _late_options(self) -> dict[str, Any]:
        return {"task": self.task, "dimensions": self.dimensions, "normalized": self.normalized,
                "window": self.window, "overlap": self.overlap, "embedding_type": self.core_embedding_type}

    def _embedded(self, part: Any, found: list[list[Any]]) -> list[Document]:
        """The chunks with their vectors and seals (``replace`` keeps the plain split's ids)."""
        space = self.vector_space()
        output = []
        for (doc, chunks, spans), vectors in zip(part, found, strict=True):
            pooled, placed = iter(vectors), iter(spans)
            for chunk in chunks:
                if chunk.content:
                    output.append(sealed(chunk, space=space, document=doc.content, span=next(placed),
                                         vector=next(pooled).embedding.tolist()))
                else:
                    output.append(chunk)
        return output

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Split and late-chunk ``documents``; returns the chunk Documents, in source and split order, and ``meta``
        (model, token usage) as the embedders do."""
        self.warm_up()
        output: list[Document] = []
        usage = TokenUsage()
        for part in self._parts(self._plan(documents)):
            found = self.embedder.late_chunk_many([doc.content for doc, _, _ in part],  # Haystack's bar counts parts
                                                  spans=[spans for _, _, spans in part], show_progress=False,
                                                  **self._late_options(), usage=usage)
            output += self._embedded(part, found)
        return {"documents": output, "meta": self._run_meta(usage)}

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """Same as :meth:`run`, without blocking the event loop."""
        await self.warm_up_async()
        output: list[Document] = []
        usage = TokenUsage()
        for part in self._parts(self._plan(documents)):
            found = await self.embedder.alate_chunk_many([doc.content for doc, _, _ in part],
                                                         spans=[spans for _, _, spans in part], **self._late_options(),
                                                         usage=usage)
            output += self._embedded(part, found)
        return {"documents": output, "meta": self._run_meta(usage)}
