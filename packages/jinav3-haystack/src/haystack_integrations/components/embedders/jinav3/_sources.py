"""Where chunk Documents sit in their source document: grouping by ``source_id`` and laying chunks out as spans.

Late chunking embeds a whole source once and pools each chunk's tokens, so chunk Documents must be regrouped by the
document they came from and placed back into its text. Haystack splitters record that in ``meta["source_id"]``,
``meta["split_id"]`` and ``meta["split_idx_start"]``.

The rule is "exact or said out loud": a source is rebuilt character for character from ``split_idx_start``
(overlapping chunks must agree on the characters they share), so the vectors are those of late chunking over the
true source. Text that no chunk covers is never invented: each stretch of text the chunks do cover becomes its own
sequence, with a warning. Chunks that contradict each other are an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from haystack import Document, logging

from jinav3 import InvalidInputError, Span, spans_from_texts

logger = logging.getLogger(__name__)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def has_text(doc: Document) -> bool:
    """A chunk with at least one character (whitespace counts: it is part of the source and gets a vector)."""
    return bool(doc.content)


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
class Segment:
    """One sequence to late-chunk: its ``text``, and for each member (an index into the caller's chunk list) its
    span in that text."""

    text: str = ""
    members: list[int] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)


def rebuild_source(source: str, chunks: Sequence[str], starts: Sequence[object]) -> list[Segment]:
    """The text of one source rebuilt from its chunks (in split order), as one or more exact segments.

    With ``split_idx_start`` on every chunk, characters are laid out at their offsets: overlapping chunks must
    agree (else :class:`InvalidInputError`), and a stretch no chunk covers splits the source into segments (a
    warning names it; nothing is filled in). Without offsets the chunks are joined with one space, as the Jina API
    does for late chunking, with a warning that the vectors are those of the joined text."""
    if len(chunks) == 1 and not _int(starts[0]):
        return [Segment(chunks[0], [0], [(0, len(chunks[0]))])]  # a chunk alone is its own text: nothing to join
    if not all(_int(start) for start in starts):
        logger.warning(
            "Chunks of source {source} have no split_idx_start, so the source cannot be rebuilt exactly; late "
            "chunking runs over the chunks joined by one space (as the Jina API does). Split with Haystack's "
            "DocumentSplitter, or use JinaV3LateChunkingSplitter on the unsplit documents, for exact vectors.",
            source=source,
        )
        joined = Segment()
        for member, chunk in enumerate(chunks):
            joined.text += (" " if joined.text else "") + chunk
            joined.members.append(member)
            joined.spans.append((len(joined.text) - len(chunk), len(joined.text)))
        return [joined]

    order = sorted(range(len(chunks)), key=lambda i: (starts[i], -len(chunks[i]), i))
    segments: list[Segment] = []
    offset = 0  # where the current segment starts in the source
    gaps: list[tuple[int, int]] = []
    for member in order:
        chunk, start = chunks[member], starts[member]
        assert isinstance(start, int)
        if start < 0:
            raise InvalidInputError(f"a chunk of source {source} has a negative split_idx_start ({start})")
        current = segments[-1] if segments else None
        if current is None or start > offset + len(current.text):
            if current is not None or start > 0:
                gaps.append((offset + len(current.text) if current else 0, start))
            current, offset = Segment(), start
            segments.append(current)
        local = start - offset
        known = current.text[local : local + len(chunk)]
        if not chunk.startswith(known):
            raise InvalidInputError(
                f"chunks of source {source} disagree about the text at characters {start}..{start + len(known)} "
                f"({known[:40]!r} vs {chunk[: len(known)][:40]!r}): they were changed after splitting or come from "
                "different texts, so the source cannot be rebuilt; late-chunk the unsplit documents with "
                "JinaV3LateChunkingSplitter(document_splitter=...) instead"
            )
        current.text += chunk[len(known) :]
        current.members.append(member)
        current.spans.append((local, local + len(chunk)))
    if gaps:
        logger.warning(
            "Source {source} cannot be rebuilt exactly: no chunk covers characters {gaps}. Each covered stretch is "
            "late-chunked on its own (nothing is filled in), so chunks miss the context across the gaps. Pass the "
            "chunks exactly as the splitter made them, or use JinaV3LateChunkingSplitter on the unsplit documents.",
            source=source,
            gaps=", ".join(f"{a}..{b}" for a, b in gaps),
        )
    return segments


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
