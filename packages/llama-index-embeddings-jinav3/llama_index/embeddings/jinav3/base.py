"""``JinaV3Embedding``: a LlamaIndex embedding model that routes queries and documents to their own tasks.

LlamaIndex already separates the two paths: retrievers call ``get_query_embedding`` and indexing calls
``get_text_embedding_batch``. jina-embeddings-v3 needs exactly that split (``retrieval.query`` vs
``retrieval.passage`` LoRA adapters), so this class only maps each path to its task and hands the texts to the
core ``Embedder``; pooling, batching, Matryoshka and HTTP all stay in the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, field_validator, model_validator
from llama_index.core.schema import BaseNode, MetadataMode

from jinav3 import InvalidInputError
from jinav3.tasks import validate_task
from llama_index.embeddings.jinav3.sealed import check_sealed_node, is_sealed, refuse_plain_passages
from llama_index.embeddings.jinav3.settings import JinaV3CoreSettings


class JinaV3Embedding(JinaV3CoreSettings, BaseEmbedding):
    """jina-embeddings-v3 for LlamaIndex: ``retrieval.query`` for queries, ``retrieval.passage`` for texts.

    Use it as ``Settings.embed_model`` or ``VectorStoreIndex(..., embed_model=...)``. In an ``IngestionPipeline``
    it leaves nodes alone that :class:`~llama_index.node_parser.jinav3.JinaV3LateChunkingNodeParser` already
    embedded (their late-chunked vectors carry document context a plain re-embedding would lose) once their seal
    holds, and refuses a node whose seal does not (its text, offsets or vector changed since, or it comes from
    another model, width or task). ``strict_late_chunking=True`` (for a late-chunking index) also refuses to make a
    plain passage vector for anything unsealed, so a reopened index or a default splitter cannot fill the store with
    context-free vectors; queries are not affected.
    """

    embed_batch_size: int = Field(
        default=64, gt=0, le=2048, description="Texts per core call (the core batches by tokens inside)."
    )
    query_task: str | None = Field(
        default="retrieval.query", description="Task (LoRA adapter) for queries; None = base weights."
    )
    document_task: str | None = Field(
        default="retrieval.passage", description="Task (LoRA adapter) for texts and nodes; None = base weights."
    )
    truncate: bool = Field(
        default=False, description="Cut texts past the model's context instead of raising an error."
    )
    strict_late_chunking: bool = Field(
        default=False,
        description="For a late-chunking index: refuse to make plain passage vectors (only sealed late-chunked "
        "nodes pass); queries are not affected.",
    )

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """One-line migration from llama-index-embeddings-jinaai: ``task=`` is one task for both roles, as there;
        ``encoding_queries``/``encoding_documents`` become ``embedding_type``; ``late_chunking=True`` is refused with
        the way to get it (an embed model never sees whole documents in LlamaIndex)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "task" in data:
            if {"query_task", "document_task"} & data.keys():
                raise InvalidInputError("pass either task= (one task for both roles) or query_task/document_task")
            data["query_task"] = data["document_task"] = data.pop("task")
        encodings = {data.pop(key) for key in ("encoding_queries", "encoding_documents") if key in data} - {None}
        if encodings:
            if len(encodings) > 1 or ("embedding_type" in data and data["embedding_type"] not in encodings):
                raise InvalidInputError("queries and documents need one encoding to be comparable; set embedding_type")
            data["embedding_type"] = encodings.pop()
        if data.pop("late_chunking", False):
            raise InvalidInputError(
                "late_chunking=True on the embed model cannot be exact in LlamaIndex: an embed model receives chunk "
                "texts in batches, never the document they came from (llama-index-embeddings-jinaai late-chunks "
                "whatever batch arrives, mixing documents). Put JinaV3LateChunkingNodeParser(embed_model=...) in "
                "transformations instead: it embeds each document whole and sets every node's vector."
            )
        return data

    @field_validator("query_task", "document_task")
    @classmethod
    def _known_task(cls, task: str | None) -> str | None:
        return validate_task(task)

    @classmethod
    def class_name(cls) -> str:
        return "JinaV3Embedding"

    def to_payload(self) -> dict[str, Any]:
        """What instrumentation sees: everything that identifies the vectors, never the API key."""
        return {
            **super().to_payload(),
            "backend": self.backend,
            "query_task": self.query_task,
            "document_task": self.document_task,
            "dimensions": self.dimensions,
            "embedding_type": self.embedding_type,
        }

    # -- the three LlamaIndex paths, each mapped to its task -------------------------------------------------
    def _vectors(self, texts: list[str], task: str | None) -> list[Embedding]:
        return self.core.embed(texts, task=task, dimensions=self.dimensions, truncate=self.truncate,
                               embedding_type=self.core_embedding_type,
                               show_progress=False).tolist()  # LlamaIndex's own show_progress draws the bar

    async def _avectors(self, texts: list[str], task: str | None) -> list[Embedding]:
        vectors = await self.core.aembed(texts, task=task, dimensions=self.dimensions, truncate=self.truncate,
                                         embedding_type=self.core_embedding_type)
        return vectors.tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._vectors([query], self.query_task)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._avectors([query], self.query_task))[0]

    def _passages(self, texts: list[str]) -> list[str]:
        """The texts for plain passage vectors, unless this model is strict (then nothing plain is made)."""
        if self.strict_late_chunking and texts:
            raise refuse_plain_passages(len(texts), texts[0])
        return texts

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._vectors(self._passages([text]), self.document_task)[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._avectors(self._passages([text]), self.document_task))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._vectors(self._passages(texts), self.document_task) if texts else []

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._avectors(self._passages(texts), self.document_task) if texts else []

    # -- IngestionPipeline: keep late-chunked vectors whose seal holds -----------------------------------------
    def _nodes_to_embed(self, nodes: Sequence[BaseNode]) -> list[BaseNode]:
        """The nodes this model must embed: all but the sealed late-chunked ones, each checked first (the whole
        batch is checked before anything is embedded, so a refusal leaves every node as it was)."""
        todo: list[BaseNode] = []
        for node in nodes:
            if is_sealed(node):
                check_sealed_node(node, self.sealed_space(self.document_task))
            else:
                todo.append(node)
        return todo

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        todo = self._nodes_to_embed(nodes)
        texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in todo]
        for node, embedding in zip(todo, self.get_text_embedding_batch(texts, **kwargs), strict=True):
            node.embedding = embedding
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        todo = self._nodes_to_embed(nodes)
        texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in todo]
        for node, embedding in zip(todo, await self.aget_text_embedding_batch(texts, **kwargs), strict=True):
            node.embedding = embedding
        return nodes
