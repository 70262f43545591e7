"""Where chunk Documents sit in their source document: grouping by ``source_id`` and laying chunks out as spans.

Late chunking embeds a whole source once and pools each chunk's tokens, so chunk Documents must be regrouped by the
document they came from and placed back into its text. Haystack splitters record that in ``meta["source_id"]``,
``meta["split_id"]`` and ``meta["split_idx_start"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from haystack import Document

from jinav3 import InvalidInputError, Span, spans_from_texts


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def group_by_source(documents: Sequence[Document]) -> list[list[int]]:
    """Indices of ``documents`` per source, sources in order of first appearance, each group in split order
    (``split_id``, else ``split_idx_start``, else input order). A document without ``source_id`` is its own source."""
    groups: dict[object, list[int]] = {}
    for index, doc in enumerate(documents):
        source = doc.meta.get("source_id")
        groups.setdefault(("own", index) if source is None else ("source", source), []).append(index)
    ordered: list[list[int]] = []
    for members in groups.values():
        for key in ("split_id", "split_idx_start"):
            if all(_int(documents[i].meta.get(key)) for i in members):
                members = sorted(members, key=lambda i, key=key: (documents[i].meta[key], i))
                break
        ordered.append(members)
    return ordered


def chunk_texts(documents: Sequence[Document]) -> list[str]:
    """The chunk texts; a chunk without text cannot be located or pooled, so it is an error naming the document."""
    texts = []
    for doc in documents:
        if doc.content is None or not doc.content.strip():
            raise InvalidInputError(f"document {doc.id} has no text; late chunking needs text in every chunk")
        texts.append(doc.content)
    return texts


def rebuild_source(chunks: Sequence[str], starts: Sequence[object]) -> tuple[str, list[Span]]:
    """Rebuild a source text from its chunks (in split order) and give their spans in it.

    With consistent ``split_idx_start`` offsets the text is laid out exactly (overlapping text must agree, gaps
    become spaces); otherwise the chunks are joined with one space, as the Jina API does for late chunking."""
    if all(_int(start) for start in starts):
        text = ""
        spans: list[Span] = []
        for chunk, start in zip(chunks, starts, strict=True):
            assert isinstance(start, int)
            if start < 0 or not chunk.startswith(text[start : start + len(chunk)]):
                break
            text = text.ljust(start) + chunk + text[start + len(chunk) :]
            spans.append((start, start + len(chunk)))
        else:
            return text, spans
    text, spans = "", []
    for chunk in chunks:
        text += (" " if text else "") + chunk
        spans.append((len(text) - len(chunk), len(text)))
    return text, spans


def spans_in_source(source: str, chunks: Sequence[Document]) -> list[Span]:
    """Spans of a splitter's chunk Documents in their ``source`` text: ``split_idx_start`` where it is exact,
    else each chunk is located by its text (an error names a chunk that does not occur)."""
    texts = chunk_texts(chunks)
    spans: list[Span] = []
    for doc, text in zip(chunks, texts, strict=True):
        start = doc.meta.get("split_idx_start")
        if not (_int(start) and source[start : start + len(text)] == text):  # type: ignore[index, operator]
            return spans_from_texts(source, texts)
        spans.append((start, start + len(text)))  # type: ignore[operator]
    return spans
