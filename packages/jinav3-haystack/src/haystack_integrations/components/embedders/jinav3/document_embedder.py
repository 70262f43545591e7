"""``JinaV3DocumentEmbedder``: Documents in, the same Documents with ``embedding`` set out (the indexing side).

Plain mode embeds each Document's text on its own. ``late_chunking=True`` treats the incoming Documents as chunks of
larger sources (as ``DocumentSplitter`` emits them) and late-chunks each source once, whole: the source Document
itself when it is in the run (``source_documents``, each chunk found in it), else the text laid back out from the
chunks' ``split_idx_start`` offsets and proved to be the source by its Haystack id. A source that can be neither is
refused; nothing is late-chunked piece by piece.

Every late-chunked Document carries a seal (``meta["jinav3_seal"]``) of its text, offsets, source and vector space.
Sealed Documents pass through untouched while the seal holds; a changed one (a cleaner or splitter after the
late-chunking step) is refused before anything is embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import Secret
from tqdm import tqdm

from haystack_integrations.components.embedders.jinav3._component import (
    JinaV3Component,
    batches,
    check_batch_size,
    check_documents,
    default_api_key,
    restore_secrets,
)
from haystack_integrations.components.embedders.jinav3._seals import (
    carries_late_chunking,
    check_document,
    sealed,
    unsealed_meta,
)
from haystack_integrations.components.embedders.jinav3._sources import (
    COMPOSITIONS,
    Located,
    SourceNotRebuiltError,
    group_by_source,
    has_text,
    is_chunk,
    locate_chunks,
    proves_source,
    rebuild_source,
)
from jinav3 import InvalidInputError, LateChunkingRequiredError, Span
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
        strict_late_chunking: bool = False,
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
            through unchanged while their seal holds (a changed one is refused), so a document embedder placed after
            a late-chunking splitter cannot replace contextual vectors with context-free ones. In plain mode the new
            vector is plain and the seal is dropped.
        :param strict_late_chunking: Plain mode, for a late-chunking index: refuse
            (``LateChunkingRequiredError``) to make a plain passage vector, i.e. for any Document without a valid
            seal and for ``overwrite=True``; sealed Documents still pass through. Off by default: a plain-mode
            embedder is also the embedder of plain indexes. ``late_chunking=True`` is always strict (every vector it
            makes is late-chunked in its exact source, or the run is refused).
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
        self.strict_late_chunking = strict_late_chunking

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
            strict_late_chunking=self.strict_late_chunking,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JinaV3DocumentEmbedder:
        return default_from_dict(cls, restore_secrets(data))

    # -- what gets embedded ----------------------------------------------------------------------------------
    def _text_to_embed(self, doc: Document) -> str:
        values = [str(doc.meta[key]) for key in self.meta_fields_to_embed if doc.meta.get(key) is not None]
        return self.prefix + self.embedding_separator.join([*values, doc.content or ""]) + self.suffix

    def _refuse_plain(self, doc: Document, why: str) -> None:
        """Strict mode: a passage vector without late chunking is refused (queries are never affected)."""
        if self.strict_late_chunking and self.task != "retrieval.query":
            raise LateChunkingRequiredError(
                f"JinaV3DocumentEmbedder(strict_late_chunking=True) would make a plain vector for document {doc.id} "
                f"({(doc.content or '')[:40]!r}), which {why}; late-chunk it (JinaV3LateChunkingSplitter, or "
                "JinaV3DocumentEmbedder(late_chunking=True) after a splitter), or set strict_late_chunking=False "
                "for an index of plain vectors"
            )

    def _plain_todo(self, documents: list[Document]) -> list[int]:
        """Plain mode: the Documents to embed. A sealed one passes through only while its seal holds (its text,
        vector and space are those it was late-chunked with); a broken seal is refused. ``overwrite=True``
        re-embeds it plainly and drops the seal (refused in strict mode)."""
        todo, kept, space = [], 0, None
        for index, doc in enumerate(documents):
            if not carries_late_chunking(doc):
                self._refuse_plain(doc, "carries no late-chunking seal")
                todo.append(index)
            elif self.overwrite:
                self._refuse_plain(doc, "is late-chunked (overwrite=True)")
                todo.append(index)
            else:
                space = space or self.vector_space()
                check_document(doc, component="JinaV3DocumentEmbedder", space=space)
                kept += 1
        if kept:
            logger.info("JinaV3DocumentEmbedder kept the late-chunked vectors of {count} documents (their seals "
                        "hold; overwrite=False).", count=kept)
        return todo

    def _keeps(self, documents: list[Document], group: list[int]) -> bool:
        """Late chunking: whether a source's chunks all carry a valid seal of this space already (then they pass
        through; anything else is late-chunked again from the source, exactly)."""
        if self.overwrite:
            return False
        try:
            for i in group:
                check_document(documents[i], component="JinaV3DocumentEmbedder", space=self.vector_space())
        except InvalidInputError:
            return False
        return True

    def _source_of(self, chunks: list[Document], sources: dict[str, Document]) -> Located:
        """One source's text and its chunks' spans: the source Document when it is in the run, else the text
        rebuilt from the chunks, proved to be the source by its Haystack id. Anything else is refused."""
        first = chunks[0]
        source_id = first.meta.get("source_id")
        if source_id is not None and source_id in sources:
            return Located(sources[source_id].content or "", locate_chunks(sources[source_id], chunks))
        if not is_chunk(first) and len(chunks) == 1:
            return Located(first.content or "", [(0, len(first.content or ""))])  # a whole document, its own source
        located = rebuild_source(str(source_id), [c.content or "" for c in chunks],
                                 [c.meta.get("split_idx_start") for c in chunks])
        if not proves_source(located.text, first):
            raise SourceNotRebuiltError(
                f"the chunks of source {source_id} do not rebuild that document exactly (the rebuilt text's "
                "Haystack id is not the source_id): a chunk was dropped or changed after splitting (e.g. "
                "DocumentCleaner stripped an edge), or the source's meta was changed, or it has an id of its own. "
                + COMPOSITIONS
            )
        return located

    def _plan(self, documents: list[Document], source_documents: list[Document] | None = None) -> _Plan:
        """Plain mode: one unit per Document to embed. Late chunking: one unit per source (its whole text), with
        the members' spans in it. A chunk with no text at all (``""``/None) has nothing to pool and keeps
        ``embedding=None``; whitespace-only chunks are part of the source and are pooled."""
        if not self.late_chunking:
            if source_documents is not None:
                raise InvalidInputError("source_documents is an input of JinaV3DocumentEmbedder(late_chunking=True)")
            todo = self._plain_todo(documents)
            return _Plan([[i] for i in todo], [self._text_to_embed(documents[i]) for i in todo], None)
        sources = {doc.id: doc for doc in check_documents(source_documents or [], "JinaV3DocumentEmbedder")}
        members, texts, spans = [], [], []
        empty = [doc.id for doc in documents if not has_text(doc)]
        if empty:
            logger.warning(
                "JinaV3DocumentEmbedder: {count} chunks have no text and get no embedding: {ids}",
                count=len(empty), ids=", ".join(empty[:5]),
            )
        for group in group_by_source(documents):
            group = [i for i in group if has_text(documents[i])]
            if not group or self._keeps(documents, group):
                continue
            located = self._source_of([documents[i] for i in group], sources)
            members.append(group)
            texts.append(located.text)
            spans.append(located.spans)
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
        Late-chunked ones carry their seal; plain vectors carry none (an old seal is dropped)."""
        output = list(documents)
        space = self.vector_space() if plan.spans is not None else ""
        for part, found in results:
            for unit, unit_vectors in zip(part, found, strict=True):
                for k, (i, vec) in enumerate(zip(plan.members[unit], unit_vectors, strict=True)):
                    doc = documents[i]
                    if plan.spans is None:
                        output[i] = replace(doc, embedding=vec.tolist(), meta=unsealed_meta(doc.meta))
                    else:
                        output[i] = sealed(doc, space=space, document=plan.texts[unit], span=plan.spans[unit][k],
                                           vector=vec.tolist())
        return {"documents": output, "meta": self._run_meta(usage)}

    # -- run --------------------------------------------------------------------------------------------------
    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document], source_documents: list[Document] | None = None) -> dict[str, Any]:
        """Embed ``documents``; returns new ``documents`` with ``embedding`` set and ``meta`` (model, token usage).
        ``source_documents`` (late chunking): the unsplit documents, when they are in the run."""
        documents = check_documents(documents, "JinaV3DocumentEmbedder")
        self.warm_up()
        plan, usage = self._plan(documents, source_documents), TokenUsage()
        results = [(part, self._embed_part(plan, part, usage)) for part in self._parts(plan)]
        return self._output(documents, plan, results, usage)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document],
                        source_documents: list[Document] | None = None) -> dict[str, Any]:
        """Same as :meth:`run`, without blocking the event loop."""
        documents = check_documents(documents, "JinaV3DocumentEmbedder")
        await self.warm_up_async()
        plan, usage = self._plan(documents, source_documents), TokenUsage()
        results = [(part, await self._aembed_part(plan, part, usage)) for part in self._parts(plan)]
        return self._output(documents, plan, results, usage)
