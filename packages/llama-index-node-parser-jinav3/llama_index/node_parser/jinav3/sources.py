"""The whole document behind pieces that another node parser made, rebuilt exactly or not at all.

A node parser before the late-chunking parser (``SentenceWindowNodeParser``, ``MarkdownNodeParser``...) hands over
pieces, each with its SOURCE relationship (the document's id, metadata and hash) and its character offsets in that
document. Late chunking needs the document, not the piece: the pieces are laid back at their offsets, and the text
they spell out is accepted only when it hashes to the SOURCE's hash, i.e. when it *is* the document (pieces that
cover it without a gap, overlaps agreeing). Anything less would late-chunk with a context that is not the
document's, so it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llama_index.core.schema import BaseNode, Document, MetadataMode, ObjectType, RelatedNodeInfo, TextNode

from jinav3 import InvalidInputError, Span


@dataclass(frozen=True)
class RebuiltSource:
    """A document rebuilt from its pieces: its id, text, and each piece's span in it (in the pieces' order)."""

    source_id: str
    text: str
    spans: list[Span]


def _refusal(source: RelatedNodeInfo, count: int, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"the {count} nodes of document {source.node_id!r} (made by a node parser before "
        f"JinaV3LateChunkingNodeParser) do not rebuild its text exactly: {why}. Late-chunking them without their "
        "document would lose its context. Give JinaV3LateChunkingNodeParser the documents themselves, with that "
        "parser's splitter as text_splitter= (or use a parser whose pieces cover the whole text, such as "
        "SentenceWindowNodeParser)."
    )


def _hash_of(text: str, source: RelatedNodeInfo) -> str:
    """The hash LlamaIndex gives a node of ``source``'s type with this text and the source's metadata."""
    kind = Document if source.node_type in (ObjectType.DOCUMENT, None) else TextNode
    return kind(text=text, metadata=dict(source.metadata or {})).hash


def rebuild_source(pieces: Sequence[BaseNode]) -> RebuiltSource:
    """The document that ``pieces`` (all with the same SOURCE) were cut from, or a refusal naming what is missing."""
    source = pieces[0].source_node
    assert source is not None  # callers group by SOURCE
    spans: list[Span] = []
    characters: dict[int, str] = {}
    for piece in pieces:
        text = piece.get_content(metadata_mode=MetadataMode.NONE)
        start, end = getattr(piece, "start_char_idx", None), getattr(piece, "end_char_idx", None)
        if start is None or end is None or end - start != len(text):
            raise _refusal(source, len(pieces), f"node {piece.node_id!r} has no exact offsets ({start}, {end})")
        for offset, character in enumerate(text, start):
            if characters.setdefault(offset, character) != character:
                raise _refusal(source, len(pieces), f"overlapping nodes disagree at character {offset}")
        spans.append((start, end))
    length = max(characters) + 1 if characters else 0
    missing = [offset for offset in range(length) if offset not in characters]
    if missing:
        raise _refusal(source, len(pieces), f"no node covers characters {missing[0]}..{missing[-1] + 1} "
                                             f"({len(missing)} in all)")
    text = "".join(characters[offset] for offset in range(length))
    if source.hash and _hash_of(text, source) != source.hash:
        raise _refusal(source, len(pieces), "the text the nodes spell out is not the document's (its hash differs: "
                                             "text before the first or after the last node is missing)")
    if not source.hash:
        raise _refusal(source, len(pieces), "its SOURCE relationship carries no hash to check the text against")
    return RebuiltSource(source.node_id, text, spans)
