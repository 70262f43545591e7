"""``JinaV3Embeddings``: LangChain ``Embeddings`` that route queries and documents to their own task adapters.

Vector stores call ``embed_documents`` when they add texts and ``embed_query`` when they search; jina-embeddings-v3
wants ``retrieval.passage`` for the first and ``retrieval.query`` for the second, so this class maps each call to
its task and hands the texts to the core ``Embedder``. Pooling, batching, Matryoshka and HTTP stay in the core.
``embed_documents`` also returns the late-chunked vector that a :class:`JinaV3LateChunkingSplitter` chunk carries
in its text (see :mod:`langchain_jinav3.handoff`) once its seal holds. With ``strict_late_chunking=True`` (the
embeddings of a late-chunking store) it refuses to make a plain passage vector for a text that lost its carried
vector on the way (a LangChain splitter or cleaner after ours, LangChain's own ``index()``, a filter re-embedding
retrieved chunks): that check needs no call stack, so it holds in threads, executors and worker processes alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.utils import secret_from_env
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from jinav3 import Chunk, Embedder, InvalidInputError, LateChunkingRequiredError, check_seal, check_texts
from jinav3.late_chunking.chunking import ChunkerLike
from jinav3.matryoshka import check_dimensions, float_path_encoding
from jinav3.runtime.settings import DEFAULT_MODELS, backend_options, canonical_model
from jinav3.tasks import validate_task
from langchain_jinav3.handoff import Vector, carried_vector, lost_late_chunks

#: The settings below that are backend options (handed to the core as they are).
_OPTION_FIELDS = ("engine", "device", "dtype", "max_length", "token_budget", "base_url", "timeout", "max_retries",
                  "full_dimensions")


#: Texts that LangChain stores embed only to learn the vector width, never to store: langchain-qdrant's
#: ``QdrantVectorStore`` calls ``embed_documents(["dummy_text"])`` when it opens or creates a collection. A strict
#: embeddings answers them (plainly) so that a strict store can be opened at all.
_WIDTH_PROBES = frozenset({"dummy_text"})


class JinaV3Embeddings(BaseModel, Embeddings):
    """jina-embeddings-v3 for LangChain: ``retrieval.query`` for queries, ``retrieval.passage`` for documents.

    ``backend="local"`` runs the model in this process (``model`` is a folder or hub id); ``backend="api"``
    calls the Jina Embeddings API or a ``jinav3 serve`` server at ``base_url``, with the key from ``api_key`` or
    ``JINA_API_KEY`` / ``JINAAI_API_KEY``. The core model is loaded on first use and shared by every instance with
    the same backend settings, so a splitter and a store's embeddings load it once.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    backend: Literal["local", "api"] = Field(
        default="local", description="'local' runs the model in this process; 'api' calls the Jina Embeddings API."
    )
    model: str = Field(
        default="",
        validation_alias=AliasChoices("model", "model_name"),
        description="Checkpoint folder or hub id (local) or API model name; empty = jina-embeddings-v3.",
    )
    dimensions: int | None = Field(
        default=None, gt=0, description="Matryoshka output width (32..1024 trained); None = full width."
    )
    query_task: str | None = Field(
        default="retrieval.query", description="Task (LoRA adapter) of embed_query; None = base weights."
    )
    document_task: str | None = Field(
        default="retrieval.passage", description="Task of embed_documents and late chunking; None = base weights."
    )
    truncate: bool = Field(default=False, description="Cut texts past the context instead of raising an error.")
    engine: Literal["torch", "onnx", "openvino"] | None = Field(
        default=None,
        description="Local backend: 'torch' (default), 'onnx' (ONNX Runtime, no torch) or 'openvino' (OpenVINO on the "
        "same ONNX file, no torch).",
    )
    device: str | None = Field(default=None, description="Local backend: torch device; None = auto.")
    dtype: str | None = Field(default=None, description="Local backend: float32/bfloat16/int8; None = by hardware.")
    max_length: int | None = Field(default=None, gt=0, description="Local backend: tokens per sequence.")
    token_budget: int | None = Field(default=None, gt=0, description="Local backend: padded tokens per batch.")
    base_url: str | None = Field(default=None, description="API backend: endpoint, e.g. a `jinav3 serve` server.")
    timeout: float | None = Field(default=None, gt=0, description="API backend: seconds per request.")
    max_retries: int | None = Field(default=None, ge=0, description="API backend: retries on 429/5xx.")
    full_dimensions: int | None = Field(
        default=None, gt=0, description="API backend: full width of the server's model; None = 1024."
    )
    embedding_type: Literal["float", "binary", "ubinary"] = Field(
        default="float",
        description="'float', or 'binary'/'ubinary': the sign bits as ±1.0 floats of the full width (cosine over "
        "them ranks by Hamming distance; packed bytes in a float store would not).",
    )
    strict_late_chunking: bool = Field(
        default=False,
        description="Refuse (LateChunkingRequiredError) to embed a document text plainly unless it carries its "
        "sealed late-chunked vector: for the store of a late-chunking index. Queries are never affected.",
    )
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(["JINA_API_KEY", "JINAAI_API_KEY"], default=None),
        validation_alias=AliasChoices("api_key", "jina_api_key"),
        description="API backend: key (alias jina_api_key); defaults to JINA_API_KEY or JINAAI_API_KEY. Never shown.",
    )

    _embedder: Embedder | None = PrivateAttr(default=None)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _integer_dimensions(cls, dimensions: object) -> int | None:
        return check_dimensions(dimensions)  # the core's rule: no "256" coerced to 256

    @field_validator("query_task", "document_task")
    @classmethod
    def _known_task(cls, task: str | None) -> str | None:
        return validate_task(task)

    @model_validator(mode="after")
    def _check_backend_settings(self) -> JinaV3Embeddings:
        if not self.model:
            self.model = DEFAULT_MODELS[self.backend]
        self.backend_options()  # raises, naming any setting that does not apply to this backend
        return self

    # -- the core embedder -----------------------------------------------------------------------------------
    def backend_options(self) -> dict[str, Any]:
        """Options for ``Embedder.shared``: only those set, so each backend keeps its own defaults."""
        settings = {name: getattr(self, name) for name in _OPTION_FIELDS}
        # A key from the environment is fine with the local backend; only an explicit one is misplaced there.
        if self.api_key is not None and (self.backend == "api" or "api_key" in self.model_fields_set):
            settings["api_key"] = self.api_key.get_secret_value()
        return backend_options(self.backend, settings)

    @property
    def core(self) -> Embedder:
        """The shared core embedder for these settings (loaded on first use, then reused)."""
        if self._embedder is None:
            self._embedder = Embedder.shared(self.backend, self.model, **self.backend_options())
        return self._embedder

    # -- LangChain's Embeddings interface --------------------------------------------------------------------
    def embed_query(self, text: str) -> list[float]:
        """One query vector with ``query_task``, as Python floats."""
        self._check_query(text)
        return self.core.embed([text], self.query_task, self.dimensions, truncate=self.truncate,
                               embedding_type=self.core_embedding_type)[0].tolist()

    async def aembed_query(self, text: str) -> list[float]:
        self._check_query(text)
        vectors = await self.core.aembed([text], self.query_task, self.dimensions, truncate=self.truncate,
                                         embedding_type=self.core_embedding_type)
        return vectors[0].tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Document vectors with ``document_task``. A chunk made by :class:`JinaV3LateChunkingSplitter` gets the
        late-chunked vector its text carries; every other text is embedded on its own (in one core call)."""
        carried, rest = self._sort_out(texts)
        fresh = self.core.embed(rest, self.document_task, self.dimensions, truncate=self.truncate,
                                embedding_type=self.core_embedding_type)
        return _merge(carried, fresh.tolist())

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        carried, rest = self._sort_out(texts)
        fresh = await self.core.aembed(rest, self.document_task, self.dimensions, truncate=self.truncate,
                                       embedding_type=self.core_embedding_type)
        return _merge(carried, fresh.tolist())

    def _check_query(self, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidInputError(f"query must be a string, got {type(text).__name__}")

    def _sort_out(self, texts: list[str]) -> tuple[list[Vector | None], list[str]]:
        """The carried late-chunked vector of each text (None where there is none) and the texts to embed. A chunk
        whose seal does not hold (another vector space) is refused; so is every plain text when strict, before
        anything is embedded. Lenient, a plain copy of a live chunk is embedded plainly, with a warning."""
        texts = check_texts(texts)
        carried: list[Vector | None] = []
        space = None
        for text in texts:
            chunk = carried_vector(text)
            if chunk is None:
                carried.append(None)
                continue
            space = space or self.vector_space()
            check_seal(chunk.seal, what=f"the chunk {text[:40]!r}", text=str(chunk), vector=chunk.embedding,
                       space=space, fix="Split and store with JinaV3Embeddings of the same settings.")
            carried.append(chunk.embedding.tolist())
        rest = [text for text, vector in zip(texts, carried, strict=True) if vector is None]
        if self.strict_late_chunking and any(text not in _WIDTH_PROBES for text in rest):
            raise LateChunkingRequiredError(
                f"{len(rest)} of {len(texts)} texts reached embed_documents of a strict_late_chunking JinaV3Embeddings "
                f"without a late-chunked vector (e.g. {rest[0][:40]!r}), so they would be stored with plain, "
                "context-free vectors. A chunk loses its vector when something rebuilds it after "
                "JinaV3LateChunkingSplitter: a LangChain text splitter or cleaner after ours (split with ours last, "
                "or give ours that splitter as its chunker), LangChain's own index() (use langchain_jinav3.index() "
                "/ aindex()), JSON, or a filter re-embedding retrieved chunks (put "
                "langchain_jinav3.StoredVectors(store) before it). Plain texts belong in a store whose embeddings "
                "have strict_late_chunking=False."
            )
        lost = lost_late_chunks(rest)
        if lost:
            warnings.warn(
                f"{len(lost)} texts equal chunks made by JinaV3LateChunkingSplitter but arrived without their "
                f"late-chunked vector (e.g. {lost[0][:40]!r}), so they get plain, context-free vectors (right for "
                "a plain text, wrong for a chunk). Pass the splitter's Document objects to the store unchanged (a "
                "Document rebuilt from page_content or JSON drops the vector), sync a store with "
                "langchain_jinav3.index(), and give a late-chunking store splitter.store_embeddings() "
                "(strict_late_chunking=True), which refuses such texts.",
                UserWarning,
                stacklevel=3,
            )
        return carried, rest

    @property
    def core_embedding_type(self) -> str:
        """The core encoding behind ``embedding_type``: LangChain stores take floats, so bits come as ±1.0."""
        return float_path_encoding(self.embedding_type)

    def vector_space(self) -> str:
        """Names the space of the document vectors: model, width, document task and encoding."""
        width = self.dimensions or self.core.dimensions
        return f"{canonical_model(self.core.model_name)}@{width}/{self.document_task}/{self.embedding_type}"

    # -- late chunking (used by the splitter) -------------------------------------------------------------------
    def late_chunk(
        self, documents: Sequence[str], chunker: ChunkerLike = "sentences", **options: Any
    ) -> list[list[Chunk]]:
        """Late-chunk each document on its own with ``document_task`` and ``dimensions``; ``options`` go to
        ``Embedder.late_chunk_many`` (``window``, ``overlap``, ``chunk_size``, ``chunk_overlap``...)."""
        return self.core.late_chunk_many(
            documents, chunker, task=self.document_task, dimensions=self.dimensions,
            embedding_type=self.core_embedding_type, **options
        )

    async def alate_chunk(
        self, documents: Sequence[str], chunker: ChunkerLike = "sentences", **options: Any
    ) -> list[list[Chunk]]:
        return await self.core.alate_chunk_many(
            documents, chunker, task=self.document_task, dimensions=self.dimensions,
            embedding_type=self.core_embedding_type, **options
        )


def _merge(taken: list[Vector | None], fresh: list[Vector]) -> list[Vector]:
    """Fill the gaps of ``taken`` with ``fresh`` vectors, in order."""
    remaining = iter(fresh)
    return [vector if vector is not None else next(remaining) for vector in taken]
