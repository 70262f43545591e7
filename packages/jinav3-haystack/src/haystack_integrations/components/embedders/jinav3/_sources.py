"""Where chunk Documents sit in their source document: grouping by ``source_id``, rebuilding a source from its
chunks, and locating chunks in a source given whole.

Late chunking embeds a whole source once and pools each chunk's tokens, so chunk Documents must be regrouped by the
document they came from and placed back into its text. Haystack splitters record that in ``meta["source_id"]``,
``meta["split_id"]`` and ``meta["split_idx_start"]``.

The rule is "exact or refused": a source is either given (the unsplit documents, when they are in the run) and each
chunk is found in it, or rebuilt character for character from ``split_idx_start`` and then proved to be the source
(Haystack's default document id is a hash of content and meta, so the rebuilt text must hash to ``source_id``).
Anything else (a cleaner that stripped chunk edges, a dropped chunk, chunks without offsets) is an error that says
which composition works, never a per-piece fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from haystack import Document

from jinav3 import SEAL_KEY, InvalidInputError, Span, spans_from_texts
from jinav3.late_chunking.seal import LEGACY_SEAL_KEY

#: Meta keys that Haystack's splitters (and ours) add to a chunk; the rest is the source document's own meta.
SPLIT_KEYS: frozenset[str] = frozenset(
    {"source_id", "parent_id", "page_number", "split_id", "split_idx_start", "_split_overlap", SEAL_KEY,
     LEGACY_SEAL_KEY}
)

#: What works, said by every refusal of a source that cannot be rebuilt.
COMPOSITIONS = (
    "Compositions that work: connect the unsplit documents to the embedder too "
    "(pipeline.connect('<converter or cleaner>.documents', '<embedder>.source_documents')), so each chunk is found "
    "in its real source; or clean before splitting (DocumentCleaner -> DocumentSplitter -> "
    "JinaV3DocumentEmbedder(late_chunking=True)); or use JinaV3LateChunkingSplitter(document_splitter=...) on the "
    "unsplit documents"
)


class SourceNotRebuiltError(InvalidInputError):
    """The chunks of a source do not give back that source exactly, and the source itself is not in the run."""


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def has_text(doc: Document) -> bool:
    """A chunk with at least one character (whitespace counts: it is part of the source and gets a vector)."""
    return bool(doc.content)


def is_chunk(doc: Document) -> bool:
    """A Document a splitter made (it names its source and its place there)."""
    return doc.meta.get("source_id") is not None and ("split_id" in doc.meta or "split_idx_start" in doc.meta)


def group_by_source(documents: Sequence[Document], key: str = "source_id") -> list[list[int]]:
    """Indices of ``documents`` per source (``meta[key]``), sources in order of first appearance, each group in split
    order (``split_id``, else ``split_idx_start``, else input order). A document without ``key`` is its own source."""
    groups: dict[object, list[int]] = {}
    for index, doc in enumerate(documents):
        source = doc.meta.get(key)
        groups.setdefault(("own", index) if source is None else ("source", source), []).append(index)
    ordered: list[list[int]] = []
    for members in groups.values():
        for key in ("split_id", "split_idx_start"):
            if all(_int(documents[i].meta.get(key)) for i in members):
                members = sorted(members, key=lambda i, key=key: (documents[i].meta[key], i))
                break
        ordered.append(members)
    return ordered


@dataclass
class Located:
    """One source to late-chunk: its whole ``text`` and, per member chunk (in the caller's order), its span."""

    text: str = ""
    spans: list[Span] = field(default_factory=list)


def rebuild_source(source: str, chunks: Sequence[str], starts: Sequence[object]) -> Located:
    """The text of one source laid out from its chunks at their ``split_idx_start`` offsets (overlaps must agree),
    with each chunk's span. Only a text with no uncovered stretch is returned; the caller still has to prove it is
    the whole source (:func:`proves_source`), since nothing shows what a cleaner stripped off the end."""
    if not all(_int(start) for start in starts):
        raise SourceNotRebuiltError(
            f"the chunks of source {source} have no split_idx_start, so their source cannot be rebuilt exactly. "
            + COMPOSITIONS
        )
    order = sorted(range(len(chunks)), key=lambda i: (starts[i], -len(chunks[i]), i))
    text, spans = "", [(0, 0)] * len(chunks)
    for member in order:
        chunk, start = chunks[member], starts[member]
        assert isinstance(start, int)
        if start > len(text) or start < 0:
            raise SourceNotRebuiltError(
                f"no chunk of source {source} covers characters {len(text)}..{start}: a chunk was dropped, or a "
                "cleaner (DocumentCleaner, DocumentPreprocessor) stripped chunk edges after splitting, so the source "
                "cannot be rebuilt and late chunking each piece alone would store vectors without their context. "
                + COMPOSITIONS
            )
        known = text[start : start + len(chunk)]
        if not chunk.startswith(known):
            raise SourceNotRebuiltError(
                f"chunks of source {source} disagree about the text at characters {start}..{start + len(known)} "
                f"({known[:40]!r} vs {chunk[: len(known)][:40]!r}): they were changed after splitting (e.g. by "
                "DocumentCleaner) or come from different texts, so the source cannot be rebuilt. " + COMPOSITIONS
            )
        text += chunk[len(known) :]
        spans[member] = (start, start + len(chunk))
    return Located(text, spans)


def proves_source(text: str, chunk: Document) -> bool:
    """Whether ``text`` is exactly the document ``chunk`` was split from: Haystack's default id of a Document with
    that text and the chunk's own meta (minus what splitters add) is the chunk's ``source_id``."""
    meta = {key: value for key, value in chunk.meta.items() if key not in SPLIT_KEYS}
    return Document(content=text, meta=meta).id == chunk.meta.get("source_id")


def locate_chunks(source: Document, chunks: Sequence[Document]) -> list[Span]:
    """Spans of ``chunks`` (all with text) in their ``source`` Document given whole: ``split_idx_start`` where the
    text is there, else the occurrence of the chunk's text nearest to it (a cleaner that stripped a chunk's edges
    leaves its text inside the source). A chunk whose text does not occur in its source is an error."""
    text, spans, anchor = source.content or "", [], 0
    for chunk in chunks:
        content, start = chunk.content or "", chunk.meta.get("split_idx_start")
        anchor = start if _int(start) else anchor
        if text[anchor : anchor + len(content)] != content:
            found, position = [], text.find(content)
            while position >= 0:
                found.append(position)
                position = text.find(content, position + 1)
            if not found:
                raise SourceNotRebuiltError(
                    f"chunk {chunk.id} ({content[:40]!r}) does not occur in its source document {source.id}: a "
                    "component after the splitter rewrote its text (e.g. DocumentCleaner with "
                    "remove_extra_whitespaces or remove_empty_lines collapses text inside a chunk), so it has no "
                    "span to late-chunk; clean before splitting (DocumentCleaner -> DocumentSplitter -> "
                    "JinaV3DocumentEmbedder(late_chunking=True))"
                )
            anchor = min(found, key=lambda p, a=anchor: (abs(p - a), p))
        spans.append((anchor, anchor + len(content)))
    return spans


def spans_in_source(source: str, chunks: Sequence[Document]) -> list[Span]:
    """Spans of a splitter's chunk Documents in their ``source`` text: ``split_idx_start`` where it is exact,
    else each chunk is located by its text (an error names a chunk that does not occur). Whitespace-only chunks
    are kept: they are part of the source and get the vector of the core's rule for such spans."""
    spans: list[Span | None] = []
    for doc in chunks:
        text, start = doc.content or "", doc.meta.get("split_idx_start")
        exact = _int(start) and source[start : start + len(text)] == text  # type: ignore[index, operator]
        spans.append((start, start + len(text)) if exact else None)  # type: ignore[operator]
    if all(span is not None for span in spans):
        return spans  # type: ignore[return-value]
    located = iter(spans_from_texts(source, [doc.content or "" for doc in chunks if (doc.content or "").strip()]))
    found: list[Span] = []
    cursor = 0
    for doc, span in zip(chunks, spans, strict=True):
        text = doc.content or ""
        if text.strip():
            span = next(located)
        elif span is None:
            position = source.find(text, cursor)
            if position < 0:
                raise InvalidInputError(f"chunk {doc.id} ({text!r}) does not occur in its source document")
            span = (position, position + len(text))
        found.append(span)
        cursor = span[0]
    return found
