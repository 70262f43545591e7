"""Seals on Haystack Documents: the late-chunked vector of a chunk is bound to its text, offsets, source document and
vector space under ``meta["jinav3_seal"]`` (the core's :mod:`jinav3.late_chunking.seal`), a plain string that every
document store keeps. Our embedders and writer check it wherever they meet a chunk again, in any thread or process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from haystack import Document

from jinav3 import SEAL_KEY, BrokenSealError, Seal, check_seal, seal_string
from jinav3.late_chunking.seal import LEGACY_SEAL_KEY as LEGACY_KEY
from jinav3.late_chunking.seal import claims_late_chunk

#: What a refusal of a changed chunk proposes.
AFTER_LATE_CHUNKING = (
    "A component placed after the late-chunking step (a splitter such as DocumentSplitter or "
    "RecursiveDocumentSplitter, a cleaner such as DocumentCleaner or DocumentPreprocessor, or an embedder) changed "
    "it; split and clean before JinaV3LateChunkingSplitter / JinaV3DocumentEmbedder(late_chunking=True) and let "
    "nothing but a writer follow them"
)


def sealed(doc: Document, *, space: str, document: str, span: tuple[int, int], vector: Any) -> Document:
    """A copy of chunk ``doc`` with its late-chunked ``vector`` and the seal of it (old markers dropped)."""
    meta = {key: value for key, value in doc.meta.items() if key != LEGACY_KEY}
    meta[SEAL_KEY] = seal_string(space=space, document=document, start=span[0], end=span[1], text=doc.content or "",
                                 vector=vector)
    return replace(doc, embedding=list(vector), meta=meta)


def unsealed_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` without a seal or old marker: what a plain vector may carry."""
    return {key: value for key, value in meta.items() if key not in (SEAL_KEY, LEGACY_KEY)}


def carries_late_chunking(doc: Document) -> bool:
    """Whether ``doc`` claims a late-chunked vector (a seal, or the old marker)."""
    return claims_late_chunk(doc.meta)


def check_document(doc: Document, *, component: str, space: str | None = None) -> Seal:
    """The seal of ``doc`` when its text and vector (and ``space``, if given) are still those it was sealed with;
    else :class:`BrokenSealError` naming the document, what changed, and the composition that works."""
    what = f"{component}: document {doc.id} ({(doc.content or '')[:40]!r})"
    if SEAL_KEY not in doc.meta:
        raise BrokenSealError(
            f"{what} carries the old marker meta[{LEGACY_KEY!r}] without a seal, so nothing shows its vector is "
            "still valid; re-run the late-chunking step (JinaV3LateChunkingSplitter or "
            "JinaV3DocumentEmbedder(late_chunking=True)) on its source document"
        )
    if doc.embedding is None:
        raise BrokenSealError(
            f"{what} carries a late-chunking seal but no vector: a component dropped it (a splitter after the "
            "late-chunking step makes new Documents without embeddings; a retriever returns none unless "
            "return_embedding=True). " + AFTER_LATE_CHUNKING
        )
    return check_seal(doc.meta[SEAL_KEY], what=what, fix=AFTER_LATE_CHUNKING, text=doc.content or "",
                      vector=doc.embedding, space=space)


def check_written(documents: Sequence[Document], *, component: str, source_key: str | None = None) -> None:
    """Check every sealed Document about to be written, before anything is: each seal holds, all of one vector
    space, and the chunks of one source were late-chunked against one version of it."""
    spaces: dict[str, str] = {}
    versions: dict[Any, tuple[str, str]] = {}
    for doc in documents:
        if not carries_late_chunking(doc):
            continue
        seal = check_document(doc, component=component)
        spaces.setdefault(seal.space, doc.id)
        if len(spaces) > 1:
            raise BrokenSealError(
                f"{component}: the documents mix late-chunked vectors of spaces {', '.join(map(repr, spaces))} "
                f"(e.g. {', '.join(spaces.values())}), which cannot be compared in one store; use one model, width "
                "and embedding_type everywhere"
            )
        source = doc.meta.get(source_key) if source_key else None
        if source is not None:
            first = versions.setdefault(source, (seal.document, doc.id))
            if first[0] != seal.document:
                raise BrokenSealError(
                    f"{component}: chunks {first[1]} and {doc.id} of source {source!r} were late-chunked against "
                    "different versions of that document, so the store would mix two contexts; re-run the "
                    "late-chunking step on the current version and write its chunks together"
                )
