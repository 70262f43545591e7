"""``JinaV3DocumentEmbedder``: Documents in, the same Documents with ``embedding`` set out (the indexing side).

Plain mode embeds each Document's text on its own. ``late_chunking=True`` treats the incoming Documents as chunks of
larger sources (as ``DocumentSplitter`` emits them): the chunks of each ``source_id`` are laid back out at their
``split_idx_start`` offsets (overlaps included), the source is embedded once, and each chunk gets the mean of its own
tokens' contextual vectors. Sources are never mixed in one sequence; text no chunk covers is never invented.

Documents that already carry a late-chunked vector (``meta["jinav3_late_chunked"]``, set by
``JinaV3LateChunkingSplitter`` and by this embedder's late chunking) are passed through untouched unless
``overwrite=True``: a plain re-embedding would replace their contextual vector with a context-free one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import Secret
from tqdm import tqdm

from haystack_integrations.components.embedders.jinav3._component import (
    LATE_CHUNKED_KEY,
    JinaV3Component,
    batches,
    check_batch_size,
    check_documents,
    default_api_key,
    restore_secrets,
)
from haystack_integrations.components.embedders.jinav3._sources import group_by_source, has_text, rebuild_source
from jinav3 import InvalidInputError, Span
from jinav3.usage import TokenUsage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Plan:
    """What one run embeds: ``members[u]`` are the input indices served by unit ``u`` (its text ``texts[u]``);
    ``spans[u]`` places those members in the text (late chunking) or is absent (plain mode). Inputs in no unit
    keep the embedding they came with."""

    members: list[list[int]]
    texts: list[str]
    spans: list[list[Span]] | None


@component
class JinaV3DocumentEmbedder(JinaV3Component):
    """Embed Documents with jina-embeddings-v3 (task ``retrieval.passage`` by default), optionally late-chunked.

    ```python
    from haystack import Document
    from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder

    embedder = JinaV3DocumentEmbedder(dimensions=256)
    docs = embedder.run(documents=[Document(content="Berlin is the capital of Germany.")])["documents"]
    ```
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str = "local",
        api_key: Secret = default_api_key(),  # noqa: B008 (Haystack's convention for secrets)
        task: str | None = "retrieval.passage",
        dimensions: int | None = None,
        late_chunking: bool = False,
        prefix: str = "",
        suffix: str = "",
        batch_size: int = 32,
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        normalized: bool = True,
        truncate: bool = False,
        backend_options: dict[str, Any] | None = None,
        base_url: str | None = None,
        embedding_type: str = "float",
        overwrite: bool = False,
    ) -> None:
        """
        :param model: Folder or hub id (local) or API model name; None = jina-embeddings-v3 for the backend.
        :param backend: ``"local"`` (torch in this process) or ``"api"`` (the Jina Embeddings HTTP API).
        :param api_key: Used only with ``backend="api"``; default reads ``JINA_API_KEY`` / ``JINAAI_API_KEY``.
        :param task: LoRA task, or None for the base weights.
        :param dimensions: Matryoshka size (trained: 32…1024); None = full width.
        :param late_chunking: Embed the chunks of each ``meta["source_id"]`` together, in context (see module doc).
            Texts are then embedded as they stand in their source, so ``prefix``, ``suffix`` and
            ``meta_fields_to_embed`` cannot be used with it.
        :param prefix: Text put before each Document's text (the task instruction is added by the model).
        :param suffix: Text put after each Document's text.
        :param batch_size: Documents (late chunking: source documents) handed to the core per call; the core
            batches by tokens inside each call.
        :param progress_bar: Show a progress bar over the batches.
        :param meta_fields_to_embed: Meta fields whose values are embedded before the text.
        :param embedding_separator: Joins the meta values and the text.
        :param normalized: L2-normalise after truncation to ``dimensions``.
        :param truncate: Cut texts longer than the context instead of raising (plain mode; late chunking handles
            long sources with overlapping windows instead).
        :param backend_options: Further settings for the core backend (see ``JinaV3TextEmbedder``).
        :param base_url: API backend: the Jina API root or a ``jinav3 serve`` server (see ``JinaV3TextEmbedder``).
        :param embedding_type: ``"float"``, ``"binary"`` or ``"ubinary"`` (see ``JinaV3TextEmbedder``).
        :param overwrite: Re-embed Documents that already carry a late-chunked vector. By default they are passed
            through unchanged (with a log line), so a document embedder placed after a late-chunking splitter cannot
            replace contextual vectors with context-free ones.
        """
        self._init_backend(model, backend, api_key, task, dimensions, backend_options, base_url, embedding_type)
        if late_chunking and (prefix or suffix or meta_fields_to_embed):
            raise InvalidInputError(
                "prefix, suffix and meta_fields_to_embed change each text on its own, but with late_chunking=True "
                "chunks are embedded as they stand in their source document; drop them or set late_chunking=False"
            )
        self.late_chunking = late_chunking
        self.prefix = prefix
        self.suffix = suffix
        self.batch_size = check_batch_size(batch_size)
        self.progress_bar = progress_bar
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.normalized = normalized
        self.truncate = truncate
        self.overwrite = overwrite

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            **self._backend_params(),
            late_chunking=self.late_chunking,
            prefix=self.prefix,
            suffix=self.suffix,
            batch_size=self.batch_size,
            progress_bar=self.progress_bar,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            normalized=self.normalized,
            truncate=self.truncate,
            overwrite=self.overwrite,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JinaV3DocumentEmbedder:
        return default_from_dict(cls, restore_secrets(data))

    # -- what gets embedded ----------------------------------------------------------------------------------
    def _text_to_embed(self, doc: Document) -> str:
        values = [str(doc.meta[key]) for key in self.meta_fields_to_embed if doc.meta.get(key) is not None]
        return self.prefix + self.embedding_separator.join([*values, doc.content or ""]) + self.suffix

    def _to_embed(self, documents: list[Document]) -> list[int]:
        """Indices of the Documents this run embeds: all of them with ``overwrite=True``; otherwise all but those
        already late-chunked in this embedder's space (one from another space is an error: it would be stored
        next to vectors it cannot be compared with)."""
        if self.overwrite:
            return list(range(len(documents)))
        todo, kept, space = [], 0, None
        for index, doc in enumerate(documents):
            mark = doc.meta.get(LATE_CHUNKED_KEY)
            if mark is None or doc.embedding is None:
                todo.append(index)
                continue
            space = space or self.vector_space()
            if mark != space:
                raise InvalidInputError(
                    f"document {doc.id} carries a late-chunked vector of space {mark!r}, but this embedder produces "
                    f"{space!r}; use the same model and dimensions everywhere, or overwrite=True to re-embed it"
                )
            kept += 1
        if kept:
            logger.info(
                "JinaV3DocumentEmbedder kept the late-chunked vectors of {count} documents (overwrite=False).",
                count=kept,
            )
        return todo

    def _plan(self, documents: list[Document]) -> _Plan:
        """Plain mode: one unit per Document. Late chunking: per source, one unit per exact stretch of its text
        (normally the whole source), with the members' spans in it. A chunk with no text at all (``""``/None) has
        nothing to pool and keeps ``embedding=None``; whitespace-only chunks are part of the source and are pooled."""
        todo = self._to_embed(documents)
        if not self.late_chunking:
            return _Plan([[i] for i in todo], [self._text_to_embed(documents[i]) for i in todo], None)
        members, texts, spans = [], [], []
        empty = [documents[i].id for i in todo if not has_text(documents[i])]
        if empty:
            logger.warning(
                "JinaV3DocumentEmbedder: {count} chunks have no text and get no embedding: {ids}",
                count=len(empty), ids=", ".join(empty[:5]),
            )
        for group in group_by_source([documents[i] for i in todo]):
            group = [todo[k] for k in group if has_text(documents[todo[k]])]
            if not group:
                continue
            source = documents[group[0]].meta.get("source_id", documents[group[0]].id)
            for segment in rebuild_source(str(source), [documents[i].content or "" for i in group],
                                          [documents[i].meta.get("split_idx_start") for i in group]):
                members.append([group[m] for m in segment.members])
                texts.append(segment.text)
                spans.append(segment.spans)
        return _Plan(members, texts, spans)

    def _parts(self, plan: _Plan) -> Any:
        parts = batches(list(range(len(plan.members))), self.batch_size)
        return tqdm(parts, disable=not self.progress_bar, desc="Calculating embeddings")

    def _embed_part(self, plan: _Plan, part: Sequence[int], usage: TokenUsage) -> list[list[Any]]:
        """Vectors for the members of each unit in ``part``: one core call."""
        texts = [plan.texts[u] for u in part]
        if plan.spans is None:
            found = self.embedder.embed(texts, self.task, self.dimensions, normalized=self.normalized,
                                        truncate=self.truncate, embedding_type=self.core_embedding_type, usage=usage,
                                        show_progress=False)  # Haystack's own bar (progress_bar) counts the parts
            return [[vec] for vec in found]
        chunks = self.embedder.late_chunk_many(texts, spans=[plan.spans[u] for u in part], task=self.task,
                                               dimensions=self.dimensions, normalized=self.normalized,
                                               embedding_type=self.core_embedding_type, usage=usage,
                                               show_progress=False)
        return [[chunk.embedding for chunk in unit] for unit in chunks]

    async def _aembed_part(self, plan: _Plan, part: Sequence[int], usage: TokenUsage) -> list[list[Any]]:
        texts = [plan.texts[u] for u in part]
        if plan.spans is None:
            found = await self.embedder.aembed(texts, self.task, self.dimensions, normalized=self.normalized,
                                               truncate=self.truncate, embedding_type=self.core_embedding_type,
                                               usage=usage)
            return [[vec] for vec in found]
        chunks = await self.embedder.alate_chunk_many(texts, spans=[plan.spans[u] for u in part], task=self.task,
                                                      dimensions=self.dimensions, normalized=self.normalized,
                                                      embedding_type=self.core_embedding_type, usage=usage)
        return [[chunk.embedding for chunk in unit] for unit in chunks]

    def _output(self, documents: list[Document], plan: _Plan,
                results: list[tuple[Sequence[int], list[list[Any]]]], usage: TokenUsage) -> dict[str, Any]:
        """New Documents (``dataclasses.replace``: inputs untouched, ids kept) in input order, and run meta.
        Late-chunked ones are marked with their vector space so no later embedder overwrites them."""
        output = list(documents)
        mark = {LATE_CHUNKED_KEY: self.vector_space()} if plan.spans is not None else {}
        for part, found in results:
            for unit, unit_vectors in zip(part, found, strict=True):
                for i, vec in zip(plan.members[unit], unit_vectors, strict=True):
                    doc = documents[i]
                    output[i] = replace(doc, embedding=vec.tolist(), meta={**doc.meta, **mark} if mark else doc.meta)
        return {"documents": output, "meta": self._run_meta(usage)}

    # -- run --------------------------------------------------------------------------------------------------
    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Embed ``documents``; returns new ``documents`` with ``embedding`` set and ``meta`` (model, token usage)."""
        documents = check_documents(documents, "JinaV3DocumentEmbedder")
        self.warm_up()
        plan, usage = self._plan(documents), TokenUsage()
        results = [(part, self._embed_part(plan, part, usage)) for part in self._parts(plan)]
        return self._output(documents, plan, results, usage)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """Same as :meth:`run`, without blocking the event loop."""
        documents = check_documents(documents, "JinaV3DocumentEmbedder")
        await self.warm_up_async()
        plan, usage = self._plan(documents), TokenUsage()
        results = [(part, await self._aembed_part(plan, part, usage)) for part in self._parts(plan)]
        return self._output(documents, plan, results, usage)
