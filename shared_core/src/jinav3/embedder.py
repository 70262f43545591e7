"""``Embedder``: the one public door. Validates input, picks tasks by role, applies Matryoshka and encodings.

Backends return raw full-width vectors; everything a user chooses about the output (task, dimensions,
normalisation, encoding, chunking) is decided here, identically for every backend.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jinav3.backends import Backend
from jinav3.errors import InvalidInputError
from jinav3.late_chunking.chunking import ChunkerLike, Span, resolve_spans
from jinav3.late_chunking.preparation import PreparedDocument
from jinav3.matryoshka import (
    TRAINED_DIMENSIONS,
    encode,
    truncate_normalise,
    validate_dimensions,
    validate_embedding_type,
)
from jinav3.runtime.settings import DEFAULT_MODELS, backend_options, check_engine_options
from jinav3.tasks import RoleTasks, validate_task
from jinav3.usage import TokenUsage

_UNSET: Any = object()
_SHARED: dict[tuple, Embedder] = {}
_SHARED_LOCK = threading.Lock()


@dataclass(frozen=True)
class Chunk:
    """One late-chunked piece of a document: its text, character span and contextual vector."""

    text: str
    start: int
    end: int
    embedding: Any  # np.ndarray (float32 / packed int8 / uint8) or a base64 str, per embedding_type
    index: int = 0


def check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    """A list of strings from ``texts``, or a clear error (a bare string would otherwise be split into letters)."""
    if isinstance(texts, str):
        raise InvalidInputError(f"{what} must be a list of strings, got one string; wrap it in a list")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(f"{what}[{i}] must be a string, got {type(text).__name__}")
    return items


class Embedder:
    """Embed texts and late-chunk documents with jina-embeddings-v3 (or a plain encoder), on any backend."""

    def __init__(self, backend: Backend, roles: RoleTasks | None = None) -> None:
        self.backend = backend
        self.roles = roles or RoleTasks()

    # -- construction --------------------------------------------------------------------------------------
    @classmethod
    def local(
        cls,
        model: str | os.PathLike[str] = "jinaai/jina-embeddings-v3",
        device: str | None = None,
        dtype: str | None = None,
        *,
        query_task: str | None = "retrieval.query",
        document_task: str | None = "retrieval.passage",
        **options: Any,
    ) -> Embedder:
        """Load a checkpoint (folder or hub id) in this process. ``options`` go to the engine's backend:
        ``engine="torch"`` (default; :class:`~jinav3.backends.local.LocalBackend`: ``max_length``, ``token_budget``,
        ``max_batch``, ``attn_implementation``, ...) or ``engine="onnx"`` (ONNX Runtime on the folder's
        ``onnx/model.onnx``, no torch needed; :class:`~jinav3.backends.onnx_engine.OnnxBackend`: ``max_length``,
        ``token_budget``, ``max_batch``, ``threads``) or ``engine="openvino"`` (OpenVINO on the same file, the same
        options; :class:`~jinav3.backends.openvino_engine.OpenVinoBackend`)."""
        roles = RoleTasks(query=query_task, document=document_task)
        engine = options.pop("engine", None) or "torch"
        check_engine_options(engine, options)
        if engine == "onnx":
            from jinav3.backends.onnx_engine import OnnxBackend

            return cls(OnnxBackend(model, device=device, dtype=dtype, **options), roles)
        if engine == "openvino":
            from jinav3.backends.openvino_engine import OpenVinoBackend

            return cls(OpenVinoBackend(model, device=device, dtype=dtype, **options), roles)
        from jinav3.runtime import openmp
        from jinav3.runtime.extras import require_local

        openmp.prepare(dtype)  # int8: OpenMP's idle workers must sleep; only possible before torch is imported
        require_local()  # without the local extra: a ModelLoadError naming it, not "No module named 'torch'"
        from jinav3.model.choice import check_model_source

        check_model_source(model)  # a wrong path or an unreachable hub fails now, not after importing torch
        from jinav3.backends.local import LocalBackend

        return cls(LocalBackend(model, device=device, dtype=dtype, **options), roles)

    @classmethod
    def api(
        cls,
        model: str = "jina-embeddings-v3",
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        query_task: str | None = "retrieval.query",
        document_task: str | None = "retrieval.passage",
        **options: Any,
    ) -> Embedder:
        """Use the Jina Embeddings HTTP API (or a ``jinav3 serve`` server at ``base_url``). The key comes from
        ``api_key`` or ``JINA_API_KEY``/``JINAAI_API_KEY``; ``options`` go to :class:`ApiBackend` (``timeout``,
        ``max_retries``, ``max_concurrency``, batching limits)."""
        from jinav3.backends.api import ApiBackend

        roles = RoleTasks(query=query_task, document=document_task)
        return cls(ApiBackend(model=model, api_key=api_key, base_url=base_url, **options), roles)

    @classmethod
    def create(cls, backend: str = "local", model: str | None = None, **options: Any) -> Embedder:
        """Build an embedder from plain settings (what adapters serialise): ``backend`` is ``local`` or ``api``;
        ``model`` defaults to each backend's jina-embeddings-v3."""
        options = backend_options(backend, options)
        model = model or DEFAULT_MODELS[backend]
        return cls.local(model, **options) if backend == "local" else cls.api(model, **options)

    @classmethod
    def shared(cls, backend: str = "local", model: str | None = None, **options: Any) -> Embedder:
        """Like :meth:`create`, but one instance per distinct settings per process, so the query embedder, the
        document embedder and the splitter of one pipeline load a local model only once."""
        model = model or DEFAULT_MODELS.get(backend, model)  # model=None and the default named give one instance
        key = (backend, str(model), tuple(sorted((k, repr(v)) for k, v in options.items())))
        with _SHARED_LOCK:
            found = _SHARED.get(key)
            if found is None:
                found = _SHARED[key] = cls.create(backend, model, **options)
            return found

    # -- introspection -----------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def dimensions(self) -> int:
        """Full output width of the model (Matryoshka sizes go up to this)."""
        return self.backend.full_dimensions

    @property
    def max_length(self) -> int:
        return self.backend.max_length

    @property
    def tokenizer(self) -> Any | None:
        return self.backend.tokenizer

    def describe(self) -> dict[str, Any]:
        """Everything that determines the vectors (no secrets): for cache keys and serialised configs."""
        return {**self.backend.describe(), "query_task": self.roles.query, "document_task": self.roles.document}

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Embedder({self.describe()!r})"

    # -- output ------------------------------------------------------------------------------------------
    def _finish(self, raw: np.ndarray, dimensions: int | None, normalized: bool, embedding_type: str) -> Any:
        return encode(truncate_normalise(raw, dimensions, normalized), embedding_type)

    def _check_output(self, dimensions: int | None, embedding_type: str) -> None:
        validate_dimensions(dimensions, self.dimensions, TRAINED_DIMENSIONS if self.backend.tasks else ())
        validate_embedding_type(embedding_type)

    # -- plain embeddings ----------------------------------------------------------------------------------
    def embed(
        self,
        texts: Sequence[str],
        task: str | None = "retrieval.passage",
        dimensions: int | None = None,
        *,
        normalized: bool = True,
        embedding_type: str = "float",
        truncate: bool = False,
        show_progress: bool | None = None,
        usage: TokenUsage | None = None,
    ) -> Any:
        """One vector per text: ``(len(texts), dimensions)`` float32 (packed bytes for binary types, a list of
        strings for base64). Truncates to ``dimensions`` first, then L2-normalises unless ``normalized=False``.
        ``show_progress``: ``None`` shows a bar on a terminal once the work lasts a few seconds
        (:mod:`jinav3.runtime.progress`), ``True`` always, ``False`` never. ``usage`` (a
        :class:`jinav3.usage.TokenUsage`) receives the tokens the model consumed."""
        items = check_texts(texts)
        validate_task(task)
        self._check_output(dimensions, embedding_type)
        if not items:
            return self._finish(np.zeros((0, self.dimensions), np.float32), dimensions, normalized, embedding_type)
        raw = self.backend.embed(items, task, truncate=truncate, show_progress=show_progress, usage=usage,
                                 normalized=normalized)
        return self._finish(raw, dimensions, normalized, embedding_type)

    async def aembed(
        self,
        texts: Sequence[str],
        task: str | None = "retrieval.passage",
        dimensions: int | None = None,
        *,
        normalized: bool = True,
        embedding_type: str = "float",
        truncate: bool = False,
        usage: TokenUsage | None = None,
    ) -> Any:
        items = check_texts(texts)
        validate_task(task)
        self._check_output(dimensions, embedding_type)
        if not items:
            return self._finish(np.zeros((0, self.dimensions), np.float32), dimensions, normalized, embedding_type)
        raw = await self.backend.aembed(items, task, truncate=truncate, usage=usage, normalized=normalized)
        return self._finish(raw, dimensions, normalized, embedding_type)

    def embed_query(self, text: str, dimensions: int | None = None, **kwargs: Any) -> Any:
        """One query vector, with the query role's task (``retrieval.query`` unless overridden)."""
        if not isinstance(text, str):
            raise InvalidInputError(f"query must be a string, got {type(text).__name__}")
        return self.embed([text], self.roles.query, dimensions, **kwargs)[0]

    def embed_documents(self, texts: Sequence[str], dimensions: int | None = None, **kwargs: Any) -> Any:
        """Document vectors, with the document role's task (``retrieval.passage`` unless overridden)."""
        return self.embed(texts, self.roles.document, dimensions, **kwargs)

    async def aembed_query(self, text: str, dimensions: int | None = None, **kwargs: Any) -> Any:
        if not isinstance(text, str):
            raise InvalidInputError(f"query must be a string, got {type(text).__name__}")
        return (await self.aembed([text], self.roles.query, dimensions, **kwargs))[0]

    async def aembed_documents(self, texts: Sequence[str], dimensions: int | None = None, **kwargs: Any) -> Any:
        return await self.aembed(texts, self.roles.document, dimensions, **kwargs)

    # -- late chunking -------------------------------------------------------------------------------------
    def chunk_spans(
        self,
        document: str,
        chunker: ChunkerLike = "sentences",
        spans: Sequence[Sequence[int]] | None = None,
        *,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        language: str = "auto",
    ) -> list[Span]:
        """The spans a late-chunking call would use for ``document`` (explicit ``spans`` win over ``chunker``).
        ``language``: the sentence chunker's language, ``auto`` (detected per document) or an ISO 639 code."""
        return resolve_spans(document, chunker, spans, self.tokenizer, chunk_size, chunk_overlap, language)

    def _prepare_many(
        self,
        documents: Sequence[str],
        chunker: ChunkerLike,
        spans: Sequence[Sequence[Sequence[int]]] | None,
        task: str | None,
        dimensions: int | None,
        embedding_type: str,
        chunk_size: int,
        chunk_overlap: int,
        language: str,
    ) -> tuple[str | None, list[str], list[list[Span]]]:
        """Check a late-chunking request; return its task, documents and each document's spans."""
        task = self.roles.document if task is _UNSET else task
        validate_task(task)
        self._check_output(dimensions, embedding_type)
        docs = check_texts(documents, "documents")
        if spans is not None and len(spans) != len(docs):
            raise InvalidInputError(f"got {len(spans)} span lists for {len(docs)} documents")
        all_spans = [
            self.chunk_spans(doc, chunker, None if spans is None else spans[i], chunk_size=chunk_size,
                             chunk_overlap=chunk_overlap, language=language)
            for i, doc in enumerate(docs)
        ]
        return task, docs, all_spans

    def _chunks(
        self, docs: list[str], all_spans: list[list[Span]], raws: list[np.ndarray],
        dimensions: int | None, normalized: bool, embedding_type: str,
    ) -> list[list[Chunk]]:
        result: list[list[Chunk]] = []
        for doc, doc_spans, raw in zip(docs, all_spans, raws, strict=True):
            vectors = self._finish(raw, dimensions, normalized, embedding_type)
            result.append([
                Chunk(doc[s:e], s, e, vectors[i], i) for i, (s, e) in enumerate(doc_spans)
            ])
        return result

    def late_chunk_many(
        self,
        documents: Sequence[str],
        chunker: ChunkerLike = "sentences",
        spans: Sequence[Sequence[Sequence[int]]] | None = None,
        task: str | None = _UNSET,
        dimensions: int | None = None,
        *,
        normalized: bool = True,
        embedding_type: str = "float",
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        language: str = "auto",
        show_progress: bool | None = None,
        usage: TokenUsage | None = None,
    ) -> list[list[Chunk]]:
        """Late-chunk every document on its own: one pass over the whole document (macro windows past the
        context), then each chunk's vector is the mean of its tokens' vectors. ``task`` defaults to the
        document role's task. ``chunker``: ``sentences``/``paragraphs``/``tokens``, a Chunker, or a callable
        returning spans or chunk texts; ``spans`` (one list per document) overrides it. ``language``: the
        sentence chunker's rules, ``auto`` (each document's detected language) or an ISO 639 code such as ``de``
        (:class:`jinav3.SentenceChunker`). Memory is bounded by the
        window, not the document. ``show_progress`` as for :meth:`embed`; ``usage`` receives the tokens the model
        consumed."""
        task, docs, all_spans = self._prepare_many(
            documents, chunker, spans, task, dimensions, embedding_type, chunk_size, chunk_overlap, language
        )
        if not docs:
            return []
        raws = self.backend.late_chunk(
            docs, all_spans, task, include_special_tokens=include_special_tokens, window=window, overlap=overlap,
            show_progress=show_progress, usage=usage, normalized=normalized,
        )
        return self._chunks(docs, all_spans, raws, dimensions, normalized, embedding_type)

    def late_chunk(
        self,
        document: str,
        chunker: ChunkerLike = "sentences",
        spans: Sequence[Sequence[int]] | None = None,
        task: str | None = _UNSET,
        dimensions: int | None = None,
        **kwargs: Any,
    ) -> list[Chunk]:
        """Late-chunk one document; see :meth:`late_chunk_many`."""
        if not isinstance(document, str):
            raise InvalidInputError(f"document must be a string, got {type(document).__name__}")
        return self.late_chunk_many(
            [document], chunker, None if spans is None else [spans], task, dimensions, **kwargs
        )[0]

    async def alate_chunk_many(
        self,
        documents: Sequence[str],
        chunker: ChunkerLike = "sentences",
        spans: Sequence[Sequence[Sequence[int]]] | None = None,
        task: str | None = _UNSET,
        dimensions: int | None = None,
        *,
        normalized: bool = True,
        embedding_type: str = "float",
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        language: str = "auto",
        usage: TokenUsage | None = None,
    ) -> list[list[Chunk]]:
        task, docs, all_spans = self._prepare_many(
            documents, chunker, spans, task, dimensions, embedding_type, chunk_size, chunk_overlap, language
        )
        if not docs:
            return []
        raws = await self.backend.alate_chunk(
            docs, all_spans, task, include_special_tokens=include_special_tokens, window=window, overlap=overlap,
            usage=usage, normalized=normalized,
        )
        return self._chunks(docs, all_spans, raws, dimensions, normalized, embedding_type)

    async def alate_chunk(
        self,
        document: str,
        chunker: ChunkerLike = "sentences",
        spans: Sequence[Sequence[int]] | None = None,
        task: str | None = _UNSET,
        dimensions: int | None = None,
        **kwargs: Any,
    ) -> list[Chunk]:
        if not isinstance(document, str):
            raise InvalidInputError(f"document must be a string, got {type(document).__name__}")
        chunks = await self.alate_chunk_many(
            [document], chunker, None if spans is None else [spans], task, dimensions, **kwargs
        )
        return chunks[0]

    # -- late chunking in two halves (tokenise anywhere, run where the model is) ----------------------------
    def prepare_late_chunks(
        self,
        documents: Sequence[str],
        chunker: ChunkerLike = "sentences",
        spans: Sequence[Sequence[Sequence[int]]] | None = None,
        task: str | None = _UNSET,
        *,
        include_special_tokens: bool = True,
        chunk_size: int = 256,
        chunk_overlap: int = 0,
        language: str = "auto",
    ) -> list[PreparedDocument]:
        """Chunk and tokenise documents without running the model (local backend only; the API plans its own).
        Feed the result to :meth:`late_chunk_prepared`, in this process or another one."""
        prepare = getattr(self.backend, "prepare", None)
        if prepare is None:
            raise InvalidInputError("prepare_late_chunks needs the local backend (the API tokenises server-side)")
        task, docs, all_spans = self._prepare_many(documents, chunker, spans, task, None, "float", chunk_size,
                                                   chunk_overlap, language)
        return prepare(docs, all_spans, task, include_special_tokens)

    def late_chunk_prepared(
        self,
        prepared: Sequence[PreparedDocument],
        dimensions: int | None = None,
        *,
        normalized: bool = True,
        embedding_type: str = "float",
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool | None = None,
    ) -> list[list[Chunk]]:
        """The chunks of documents from :meth:`prepare_late_chunks` (or :class:`jinav3.DocumentPreparer`)."""
        self._check_output(dimensions, embedding_type)
        run = getattr(self.backend, "late_chunk_prepared", None)
        if run is None:
            raise InvalidInputError("late_chunk_prepared needs the local backend")
        items = list(prepared)
        for i, item in enumerate(items):
            if not isinstance(item, PreparedDocument):
                raise InvalidInputError(f"prepared[{i}] must be a PreparedDocument, got {type(item).__name__}")
        if not items:
            return []
        raws = run(items, window=window, overlap=overlap, show_progress=show_progress)
        return self._chunks([p.text for p in items], [list(p.spans) for p in items], raws, dimensions, normalized,
                            embedding_type)
