"""``JinaV3LateChunkingNodeParser``: split documents into nodes that already carry late-chunked vectors.

A plain splitter returns texts and leaves embedding to the embed model, which sees each chunk alone. Late chunking
needs the whole document: the core embeds every source document once (macro windows past the context, never two
documents in one sequence) and gives each chunk the mean of its tokens' vectors. So this parser only finds the
chunk spans (with any LlamaIndex text splitter, or a core chunker), asks the core for the vectors, and builds
``TextNode``s the LlamaIndex way, with ``node.embedding`` set. ``VectorStoreIndex`` keeps pre-set embeddings.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

from llama_index.core import Settings
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import MetadataAwareTextSplitter, NodeParser, SentenceSplitter, TextSplitter
from llama_index.core.node_parser.loading import load_parser
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.schema import BaseNode, Document, MetadataMode
from pydantic import Field, PrivateAttr, SerializeAsAny, field_validator, model_validator

from jinav3 import Chunk, InvalidInputError
from jinav3.late_chunking.chunking import ChunkerLike, Span
from jinav3.tasks import validate_task
from llama_index.embeddings.jinav3.base import JinaV3Embedding
from llama_index.embeddings.jinav3.settings import LATE_CHUNKED_KEY, JinaV3CoreSettings, canonical_model

_DEFAULT_CHUNK_SIZE = 256
_DEFAULT_CHUNK_OVERLAP = 0
_BACKEND_FIELDS = (
    "engine", "device", "dtype", "max_length", "token_budget", "api_key", "base_url", "timeout", "max_retries",
    "full_dimensions",
)


def _restore_id_func(data: dict[str, Any]) -> dict[str, Any]:
    """LlamaIndex dumps ``id_func`` as ``{"id_func_name": ...}`` and cannot load that back; accept the default."""
    id_func = data.get("id_func")
    if isinstance(id_func, dict):
        if id_func.get("id_func_name") != "default_id_func":
            raise InvalidInputError(
                f"cannot restore id_func {id_func.get('id_func_name')!r} from a dict; pass id_func=<function>"
            )
        data = {key: value for key, value in data.items() if key != "id_func"}
    return data


def _inherit_from_embed_model(data: dict[str, Any], embed_model: Any) -> dict[str, Any]:
    """Take model, width and backend settings from the embed model that will embed the queries; refuse a mix."""
    if not isinstance(embed_model, JinaV3Embedding):
        raise InvalidInputError(
            f"embed_model must be a JinaV3Embedding, got {type(embed_model).__name__}: late-chunked node vectors "
            "and query vectors must come from the same model"
        )
    if "model" in data:
        data["model_name"] = data.pop("model")
    if "model_name" in data and canonical_model(data["model_name"]) != canonical_model(embed_model.model_name):
        raise InvalidInputError(
            f"the parser's model {data['model_name']!r} differs from the embed model's {embed_model.model_name!r}; "
            "late-chunked vectors would not be comparable with query vectors (leave model_name out to inherit it)"
        )
    for name in ("dimensions", "embedding_type"):
        if name in data and data[name] != getattr(embed_model, name):
            raise InvalidInputError(
                f"the parser's {name}={data[name]!r} differ from the embed model's {name}="
                f"{getattr(embed_model, name)!r}; leave {name} out to inherit it"
            )
    same_backend = data.setdefault("backend", embed_model.backend) == embed_model.backend
    data.setdefault("model_name", embed_model.model_name)
    data.setdefault("dimensions", embed_model.dimensions)
    data.setdefault("embedding_type", embed_model.embedding_type)
    data.setdefault("task", embed_model.document_task)
    if same_backend:
        for name in _BACKEND_FIELDS:
            data.setdefault(name, getattr(embed_model, name))
    return data


def _refuse_text_keyed_cache() -> None:
    """Refuse to run inside an ``IngestionPipeline`` whose cache is on. The cache keys a transformation's output by
    its input texts alone, so a document whose text equals one parsed in an earlier run gets that document's nodes
    (its ids, its ``ref_doc_id``) back from the cache: its own nodes never reach the store, and a docstore sync
    deletes its old ones. The pipeline is found on the call stack (awaited coroutines are on it too)."""
    frame = sys._getframe(2)
    for _ in range(64):
        if frame is None:
            return
        pipeline = frame.f_locals.get("self")
        if isinstance(pipeline, IngestionPipeline):
            if pipeline.cache is not None and not pipeline.disable_cache:
                raise InvalidInputError(
                    "IngestionPipeline's cache keys nodes by the input text alone, so a document whose text equals "
                    "one parsed earlier would get that document's late-chunked nodes (ids and ref_doc_id) and its "
                    "own would never reach the store. Build the pipeline with disable_cache=True (the docstore "
                    "still skips unchanged documents)."
                )
            return
        frame = frame.f_back


def _settings_embed_model() -> Any:
    """``Settings.embed_model`` when one was set, else None. Read without resolving LlamaIndex's default (which
    would build an OpenAI model): the parser inherits a JinaV3Embedding from there, and refuses any other model,
    whose query vectors could never be compared with late-chunked node vectors."""
    embed_model = getattr(Settings, "_embed_model", None)
    if embed_model is None or isinstance(embed_model, JinaV3Embedding):
        return embed_model
    raise InvalidInputError(
        f"Settings.embed_model is a {type(embed_model).__name__}, which would embed the queries, while this parser "
        "makes jina-embeddings-v3 vectors; set Settings.embed_model = JinaV3Embedding(...) or pass "
        "embed_model=JinaV3Embedding(...) here and to the index"
    )


class JinaV3LateChunkingNodeParser(JinaV3CoreSettings, NodeParser):
    """Late-chunk each source document on its own and return nodes with ``node.embedding`` already set.

    Chunks come from ``text_splitter`` (any LlamaIndex ``TextSplitter``; default ``SentenceSplitter(chunk_size,
    chunk_overlap)``) or from a core ``chunker`` (``sentences``, ``paragraphs``, ``tokens`` of the model's
    tokenizer). Pass ``embed_model=JinaV3Embedding(...)`` to take its model, width, backend and document task (a
    conflicting explicit setting is an error). Nodes get exact ``start_char_idx``/``end_char_idx``, SOURCE/
    PREVIOUS/NEXT relationships, the document's metadata, and the marker ``jinav3_late_chunked`` (excluded from
    the embed and LLM metadata strings) that tells :class:`JinaV3Embedding` not to re-embed them.
    """

    task: str | None = Field(default="retrieval.passage", description="Task (LoRA adapter) for the documents.")
    text_splitter: SerializeAsAny[TextSplitter] | None = Field(
        default=None, description="LlamaIndex splitter that finds the chunks; None = SentenceSplitter."
    )
    chunker: Literal["sentences", "paragraphs", "tokens"] | None = Field(
        default=None, description="Use a core chunker instead of a LlamaIndex splitter."
    )
    chunk_size: int = Field(
        default=_DEFAULT_CHUNK_SIZE, gt=0, description="Default SentenceSplitter / 'tokens' chunker size."
    )
    chunk_overlap: int = Field(
        default=_DEFAULT_CHUNK_OVERLAP, ge=0, description="Default SentenceSplitter / 'tokens' chunker overlap."
    )
    include_special_tokens: bool = Field(
        default=True, description="Pool <s> and the instruction into the first chunk, </s> into the last."
    )
    window: int | None = Field(default=None, gt=0, description="Macro-window tokens for long documents.")
    overlap: int | None = Field(default=None, ge=0, description="Tokens shared by consecutive macro windows.")

    _splitter: TextSplitter | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _restore_id_func(dict(data))
        if isinstance(data.get("text_splitter"), dict):
            data["text_splitter"] = load_parser(_restore_id_func(data["text_splitter"]))
        embed_model = data.pop("embed_model", None)
        if embed_model is None:
            embed_model = _settings_embed_model()
        if embed_model is not None:
            data = _inherit_from_embed_model(data, embed_model)
        return data

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str | None) -> str | None:
        return validate_task(task)

    @model_validator(mode="after")
    def _check_splitting(self) -> JinaV3LateChunkingNodeParser:
        sized = (self.chunk_size, self.chunk_overlap) != (_DEFAULT_CHUNK_SIZE, _DEFAULT_CHUNK_OVERLAP)
        if self.text_splitter is not None and self.chunker is not None:
            raise InvalidInputError("pass either text_splitter or chunker, not both")
        if self.text_splitter is not None and sized:
            raise InvalidInputError("chunk_size/chunk_overlap apply to the default splitter; set them on text_splitter")
        if self.chunker in ("sentences", "paragraphs") and sized:
            raise InvalidInputError(f"chunk_size/chunk_overlap have no effect with chunker={self.chunker!r}")
        if self.text_splitter is None and self.chunker is None:
            self._splitter = SentenceSplitter(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)
        else:
            self._splitter = self.text_splitter
        return self

    @classmethod
    def class_name(cls) -> str:
        return "JinaV3LateChunkingNodeParser"

    # -- spans ---------------------------------------------------------------------------------------------
    def _chunker_for(self, node: BaseNode) -> ChunkerLike:
        """A core chunker name, or the splitter's ``split_text`` (metadata-aware ones budget for the metadata)."""
        splitter = self._splitter
        if splitter is None:
            return self.chunker  # type: ignore[return-value]
        if isinstance(splitter, MetadataAwareTextSplitter):
            metadata = max(node.get_metadata_str(MetadataMode.EMBED), node.get_metadata_str(MetadataMode.LLM), key=len)
            return partial(splitter.split_text_metadata_aware, metadata_str=metadata)
        return splitter.split_text

    def _plan(self, nodes: Sequence[BaseNode]) -> tuple[list[str], list[list[Span]]]:
        """The text and chunk spans of every source node; an empty document is an error, never a missing node."""
        _refuse_text_keyed_cache()
        texts: list[str] = []
        spans: list[list[Span]] = []
        for node in nodes:
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            if not text.strip():
                raise InvalidInputError(
                    f"document {node.node_id!r} has no text to late-chunk; drop empty documents before parsing"
                )
            texts.append(text)
            spans.append(
                self.core.chunk_spans(
                    text, self._chunker_for(node), chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap
                )
            )
        return texts, spans

    def _late_options(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "dimensions": self.dimensions,
            "include_special_tokens": self.include_special_tokens,
            "embedding_type": self.core_embedding_type,
            "window": self.window,
            "overlap": self.overlap,
        }

    # -- nodes ---------------------------------------------------------------------------------------------
    def _build(self, sources: Sequence[BaseNode], chunks: list[list[Chunk]]) -> list[BaseNode]:
        space = self.vector_space()
        built: list[BaseNode] = []
        for source, doc_chunks in zip(sources, chunks, strict=True):
            nodes = build_nodes_from_splits([c.text for c in doc_chunks], source, id_func=self.id_func)
            for node, chunk in zip(nodes, doc_chunks, strict=True):
                node.embedding = chunk.embedding.tolist()
                node.start_char_idx, node.end_char_idx = chunk.start, chunk.end
                node.metadata[LATE_CHUNKED_KEY] = space
                node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys, LATE_CHUNKED_KEY]
                node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, LATE_CHUNKED_KEY]
            built.extend(nodes)
        return built

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        texts, spans = self._plan(nodes)
        chunks = self.core.late_chunk_many(texts, spans=spans, show_progress=show_progress, **self._late_options())
        return self._build(nodes, chunks)

    async def _aparse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        texts, spans = self._plan(nodes)
        chunks = await self.core.alate_chunk_many(texts, spans=spans, **self._late_options())
        return self._build(nodes, chunks)

    def _postprocess_parsed_nodes(
        self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]
    ) -> list[BaseNode]:
        """LlamaIndex re-finds each node's text with ``str.find``; keep the exact spans the vectors were pooled on."""
        spans = [(getattr(n, "start_char_idx", None), getattr(n, "end_char_idx", None)) for n in nodes]
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node, (start, end) in zip(nodes, spans, strict=True):
            node.start_char_idx, node.end_char_idx = start, end  # type: ignore[attr-defined]
        return nodes
