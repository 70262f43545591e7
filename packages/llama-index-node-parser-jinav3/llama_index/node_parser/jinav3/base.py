"""``JinaV3LateChunkingNodeParser``: split documents into nodes that already carry late-chunked vectors.

A plain splitter returns texts and leaves embedding to the embed model, which sees each chunk alone. Late chunking
needs the whole document: the core embeds every source document once (macro windows past the context, never two
documents in one sequence) and gives each chunk the mean of its tokens' vectors. So this parser only finds the
chunk spans (with any LlamaIndex text splitter, or a core chunker), asks the core for the vectors, and builds
sealed :class:`~llama_index.node_parser.jinav3.nodes.LateChunkNode` s with ``node.embedding`` set.
``VectorStoreIndex`` keeps pre-set embeddings.

Given pieces that another node parser made (nodes with a SOURCE relationship), it late-chunks each piece within its
whole document, rebuilt exactly from the pieces (:mod:`~llama_index.node_parser.jinav3.sources`), and keeps the
pieces as they are (ids, relationships, metadata) with their vectors added; a document that cannot be rebuilt is
refused. Nodes it already sealed are refused as input (a chunk late-chunked alone would lose its document).

Every output node's metadata carries a seal (``jinav3_seal``: text, offsets, document and its id, vector, vector
space). It makes equal texts of different places or documents distinct nodes (their hashes differ) and lets the
embed model check the vector wherever it meets the node again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from llama_index.core import Settings
from llama_index.core.node_parser import MetadataAwareTextSplitter, NodeParser, SentenceSplitter, TextSplitter
from llama_index.core.node_parser.loading import load_parser
from llama_index.core.node_parser.node_utils import default_id_func
from llama_index.core.schema import BaseNode, Document, MetadataMode, NodeRelationship, TextNode
from pydantic import Field, PrivateAttr, SerializeAsAny, field_validator, model_validator

from jinav3 import SEAL_KEY, Chunk, InvalidInputError, seal_string
from jinav3.late_chunking.chunking import ChunkerLike, Span
from jinav3.late_chunking.languages import check_language
from jinav3.tasks import validate_task
from llama_index.embeddings.jinav3.base import JinaV3Embedding
from llama_index.embeddings.jinav3.sealed import is_sealed
from llama_index.embeddings.jinav3.settings import JinaV3CoreSettings, canonical_model
from llama_index.node_parser.jinav3.nodes import LateChunkNode, finishing_nodes
from llama_index.node_parser.jinav3.sources import rebuild_source

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


@dataclass(frozen=True)
class _Unit:
    """One document to late-chunk: its id and text, the chunk spans, and either the document node (new nodes are
    built from it) or the pieces that another parser made (they get the vectors)."""

    source_id: str
    text: str
    spans: list[Span]
    document: BaseNode | None
    pieces: list[BaseNode] | None


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
    PREVIOUS/NEXT relationships, the document's metadata, and the seal ``jinav3_seal`` (excluded from the embed
    and LLM metadata strings) that tells :class:`JinaV3Embedding` their vector and lets it check it. Pieces made
    by a parser before this one are late-chunked within their whole document (see the module doc).

    ``IngestionPipeline``'s cache is safe with this parser on (``num_workers`` too): its cache key covers the input
    text but not the document's identity, so this parser's key changes on every run (its output is never served
    from the cache), and its nodes' seals name their document, so the embed step after it never gets another
    document's cached nodes either.
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
    language: str = Field(
        default="auto", description="The 'sentences' chunker's language: 'auto' (detected per document) or an ISO "
        "639 code such as 'de'."
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
        data.pop("cache_buster", None)  # see to_dict
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

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str) -> str:
        return check_language(language)

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

    def _document_unit(self, node: BaseNode) -> _Unit:
        text = node.get_content(metadata_mode=MetadataMode.NONE)
        if not text.strip():
            raise InvalidInputError(
                f"document {node.node_id!r} has no text to late-chunk; drop empty documents before parsing"
            )
        spans = self.core.chunk_spans(text, self._chunker_for(node), chunk_size=self.chunk_size,
                                      chunk_overlap=self.chunk_overlap, language=self.language)
        return _Unit(node.node_id, text, spans, node, None)

    def _plan(self, nodes: Sequence[BaseNode]) -> list[_Unit]:
        """What to late-chunk: each whole document (a ``Document``, or any node without a SOURCE), and each
        document rebuilt from the pieces another parser made of it. A node this parser sealed is refused."""
        units: list[_Unit] = []
        pieces: dict[str, list[BaseNode]] = {}
        for node in nodes:
            if is_sealed(node):
                raise InvalidInputError(
                    f"node {node.node_id!r} is already late-chunked (it carries {SEAL_KEY!r}); late-chunking a chunk "
                    "on its own would drop its document's context. Give JinaV3LateChunkingNodeParser the documents."
                )
            if isinstance(node, Document) or node.source_node is None:
                units.append(self._document_unit(node))
            elif not isinstance(node, TextNode):
                raise InvalidInputError(f"node {node.node_id!r} is a {type(node).__name__}; only text nodes can be "
                                        "late-chunked")
            else:
                pieces.setdefault(node.source_node.node_id, []).append(node)
        for group in pieces.values():
            source = rebuild_source(group)
            units.append(_Unit(source.source_id, source.text, source.spans, None, group))
        return units

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
    def _sealed(self, base: BaseNode, chunk: Chunk, unit: _Unit, **fields: Any) -> LateChunkNode:
        """A sealed node for ``chunk`` of ``unit``, with the templates and exclusions of ``base``."""
        vector = chunk.embedding.tolist()
        seal = seal_string(space=self.sealed_space(self.task), document=unit.text, start=chunk.start,
                           end=chunk.end, text=chunk.text, vector=vector, source=unit.source_id)
        return LateChunkNode(
            text=chunk.text,
            embedding=vector,
            start_char_idx=chunk.start,
            end_char_idx=chunk.end,
            metadata={**fields.pop("metadata", {}), SEAL_KEY: seal},
            excluded_embed_metadata_keys=[*base.excluded_embed_metadata_keys, SEAL_KEY],
            excluded_llm_metadata_keys=[*base.excluded_llm_metadata_keys, SEAL_KEY],
            metadata_separator=base.metadata_separator,
            metadata_template=base.metadata_template,
            text_template=getattr(base, "text_template", TextNode.model_fields["text_template"].default),
            **fields,
        )

    def _build(self, units: Sequence[_Unit], chunks: list[list[Chunk]]) -> list[BaseNode]:
        built: list[BaseNode] = []
        for unit, doc_chunks in zip(units, chunks, strict=True):
            if unit.pieces is not None:  # another parser's pieces: the same nodes, with their vectors
                built += [
                    self._sealed(piece, chunk, unit, id_=piece.node_id, metadata=dict(piece.metadata),
                                 relationships=dict(piece.relationships))
                    for piece, chunk in zip(unit.pieces, doc_chunks, strict=True)
                ]
                continue
            document = unit.document
            assert document is not None
            source = {NodeRelationship.SOURCE: document.as_related_node_info()}
            id_func = self.id_func or default_id_func  # None on older llama-index-core
            built += [self._sealed(document, chunk, unit, id_=id_func(i, document), relationships=dict(source))
                      for i, chunk in enumerate(doc_chunks)]
        return built

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        units = self._plan(nodes)
        chunks = self.core.late_chunk_many([u.text for u in units], spans=[u.spans for u in units],
                                           show_progress=show_progress, **self._late_options())
        return self._build(units, chunks)

    async def _aparse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        units = self._plan(nodes)
        chunks = await self.core.alate_chunk_many([u.text for u in units], spans=[u.spans for u in units],
                                                  **self._late_options())
        return self._build(units, chunks)

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The settings, plus a value new on every call: ``IngestionPipeline`` keys its cache by this and the input
        text, never the document's identity, so this parser's output must never come from its cache (a document
        edited to the text of another would get that one's nodes)."""
        return {**super().to_dict(**kwargs), "cache_buster": uuid.uuid4().hex}

    def _postprocess_parsed_nodes(
        self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]
    ) -> list[BaseNode]:
        """LlamaIndex re-finds each node's text with ``str.find``; keep the exact spans the vectors were pooled on."""
        spans = [(getattr(n, "start_char_idx", None), getattr(n, "end_char_idx", None)) for n in nodes]
        with finishing_nodes():
            nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
            for node, (start, end) in zip(nodes, spans, strict=True):
                node.start_char_idx, node.end_char_idx = start, end  # type: ignore[attr-defined]
        return nodes
