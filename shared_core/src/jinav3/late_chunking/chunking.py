"""Turn a document into character spans ``(start, end)``. No model lives here.

Late chunking only changes how a chunk's vector is computed, so chunk boundaries may come from anywhere: the
chunkers below (sentences, paragraphs, fixed token windows), explicit spans, or the chunk texts of any external
splitter, located back in the document by :func:`spans_from_texts`.
"""

from __future__ import annotations

import bisect
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from jinav3.errors import InvalidInputError
from jinav3.late_chunking.languages import AUTO, check_language
from jinav3.late_chunking.sentences import BLANK_LINE, sentence_cuts

Span = tuple[int, int]


@runtime_checkable
class Chunker(Protocol):
    """Anything that can cut a text into character spans, in document order."""

    def spans(self, text: str) -> list[Span]: ...


def _strip_span(text: str, start: int, end: int) -> Span | None:
    """Shrink ``[start, end)`` to exclude surrounding whitespace; None if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _spans_between(text: str, cuts: Sequence[int]) -> list[Span]:
    spans: list[Span] = []
    previous = 0
    for cut in [*cuts, len(text)]:
        span = _strip_span(text, previous, cut)
        if span is not None:
            spans.append(span)
        previous = cut
    return spans


_PARAGRAPH_END = re.compile(rf"{BLANK_LINE}\s*")


@dataclass(frozen=True)
class SentenceChunker:
    """Split into sentences with a real segmenter (:mod:`jinav3.late_chunking.sentences`): "C. albicans", "e.g.",
    "No. 5", "Eq. 4", "3.14", initials and ellipses do not end a sentence; CJK terminators and blank lines do.

    ``language``: ``auto`` (the default) detects each document's language (:mod:`jinav3.late_chunking.languages`,
    at most about 0.25 ms a document); an ISO 639 code (``en``, ``de``, ``ru``, ``th``...) names it. It picks the
    abbreviation list and rules. ``min_chars`` merges a sentence shorter than that into the next one, so headings
    and fragments do not become chunks of their own.
    """

    min_chars: int = 0
    language: str = AUTO

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", check_language(self.language))

    def spans(self, text: str) -> list[Span]:
        return _merge_short(_spans_between(text, sentence_cuts(text, self.language)), self.min_chars)


@dataclass(frozen=True)
class ParagraphChunker:
    """Split at blank lines; ``min_chars`` merges short paragraphs into the next one."""

    min_chars: int = 0

    def spans(self, text: str) -> list[Span]:
        spans = _spans_between(text, [m.start() for m in _PARAGRAPH_END.finditer(text)])
        return _merge_short(spans, self.min_chars)


def _merge_short(spans: list[Span], min_chars: int) -> list[Span]:
    if min_chars <= 0 or len(spans) < 2:
        return spans
    merged: list[Span] = []
    pending: int | None = None
    for start, end in spans:
        start = start if pending is None else pending
        if end - start < min_chars:
            pending = start
            continue
        merged.append((start, end))
        pending = None
    if pending is not None:
        if merged:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((pending, spans[-1][1]))
    return merged


class TokenChunker:
    """Fixed windows of ``size`` tokens (``overlap`` tokens shared between neighbours), cut on token offsets.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` or a transformers fast tokenizer; :class:`jinav3.Embedder` passes
    the model's own when you ask for ``chunker="tokens"``.
    """

    def __init__(self, tokenizer: Any, size: int = 256, overlap: int = 0) -> None:
        if size < 1:
            raise InvalidInputError(f"token chunk size must be at least 1, got {size}")
        if not 0 <= overlap < size:
            raise InvalidInputError(f"token chunk overlap must be in [0, size), got {overlap} for size {size}")
        self._tokenizer = getattr(tokenizer, "backend_tokenizer", tokenizer)
        self.size = size
        self.overlap = overlap

    def spans(self, text: str) -> list[Span]:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        offsets = [(s, e) for s, e in encoding.offsets if e > s]
        spans: list[Span] = []
        step = self.size - self.overlap
        for first in range(0, len(offsets), step):
            window = offsets[first : first + self.size]
            span = _strip_span(text, window[0][0], window[-1][1])
            if span is not None:
                spans.append(span)
            if first + self.size >= len(offsets):
                break
        return spans


def spans_from_texts(document: str, chunk_texts: Sequence[str]) -> list[Span]:
    """Locate each chunk text in ``document``, in order (overlapping chunks allowed).

    Text that repeats itself (logs, tables, boilerplate) gives a chunk several candidate places. A splitter's chunks
    cover its document in order, leaving only whitespace between and around them, so the placement chosen is the
    earliest one that lets every chunk be placed that way (:func:`_tiling`). Where no placement covers the document
    (a splitter that drops separators, a custom chunker), each chunk goes to its first occurrence after the previous
    chunk's start that reaches past the previous chunk's end (:func:`_place`). A splitter that knows its own
    offsets should pass spans instead; the adapters do where the framework gives them.
    Splitters that strip or collapse whitespace inside a chunk are matched with flexible whitespace. A chunk that
    cannot be found is an error naming it, never a silently missing vector.
    """
    needles: list[str] = []
    for index, chunk in enumerate(chunk_texts):
        if not isinstance(chunk, str) or not chunk.strip():
            raise InvalidInputError(f"chunk {index} is empty or not a string: {chunk!r}")
        needles.append(chunk.strip())
    patterns = [re.compile(r"\s+".join(re.escape(part) for part in needle.split())) for needle in needles]
    tiled = _tiling(document, needles, patterns)
    if tiled is not None:
        return tiled
    spans: list[Span] = []
    search_from, previous_end = 0, 0
    for index, (needle, pattern) in enumerate(zip(needles, patterns, strict=True)):
        found = (_place(document, needle, pattern, search_from, previous_end)
                 or _place(document, needle, pattern, 0, previous_end))  # a splitter with overlap may step back
        if found is None:
            raise InvalidInputError(f"chunk {index} ({needle[:60]!r}...) does not occur in the document")
        spans.append(found)
        search_from, previous_end = found[0] + 1, found[1]
    return spans


#: Candidate places considered per chunk by :func:`_tiling` (a chunk repeated more often falls back to _place).
_MAX_CANDIDATES = 20_000


def _occurrences(document: str, needle: str, pattern: re.Pattern[str]) -> list[Span] | None:
    """Every place of ``needle`` (exact text, else the same words with any whitespace), None when too many."""
    found: list[Span] = []
    at = document.find(needle)
    while at >= 0:
        found.append((at, at + len(needle)))
        if len(found) > _MAX_CANDIDATES:
            return None
        at = document.find(needle, at + 1)
    if not found:
        found = [match.span() for match in pattern.finditer(document)]
    return found if len(found) <= _MAX_CANDIDATES else None


_TEXT = re.compile(r"\S")


def _tiling(document: str, needles: Sequence[str], patterns: Sequence[re.Pattern[str]]) -> list[Span] | None:
    """The earliest placement of the chunks, in order (each starting after the previous one's start and ending
    after its end), with only whitespace before the first, between consecutive ones and after the last; None when
    there is none."""
    n = len(document)
    after: dict[int, int] = {}  # position -> the first non-whitespace position at or after it (asked per span end)

    def next_text(i: int) -> int:
        if i not in after:
            found = _TEXT.search(document, i)
            after[i] = found.start() if found else n
        return after[i]

    places = []
    seen: dict[str, list[Span] | None] = {}  # repeated chunk texts are looked up once
    for needle, pattern in zip(needles, patterns, strict=True):
        if needle not in seen:
            seen[needle] = _occurrences(document, needle, pattern)
        found = seen[needle]
        if not found:
            return None
        places.append(found)
    # backwards: the places from which the rest of the chunks can still be laid down to the end of the text
    feasible = [span for span in places[-1] if next_text(span[1]) == n]
    usable: list[list[Span]] = [feasible]
    for found in reversed(places[:-1]):
        feasible = _able_to_continue(found, feasible, next_text)
        usable.append(feasible)
    usable.reverse()
    chosen: list[Span] = []
    previous, reach = (-1, -1), next_text(0)
    for feasible in usable:
        k = _follower(feasible, bisect.bisect_right(feasible, (previous[0], float("inf"))), previous, reach)
        if k is None:
            return None
        chosen.append(feasible[k])
        previous, reach = feasible[k], next_text(feasible[k][1])
    return chosen


def _able_to_continue(spans: Sequence[Span], following: Sequence[Span], next_text: Callable[[int], int]) -> list[Span]:
    """The ``spans`` after which some span of ``following`` can come next (one sweep: both lists are sorted)."""
    able: list[Span] = []
    j = 0
    for span in spans:
        while j < len(following) and following[j][0] <= span[0]:
            j += 1
        if _follower(following, j, span, next_text(span[1])) is not None:
            able.append(span)
    return able


def _follower(spans: Sequence[Span], first: int, previous: Span, at_most: int) -> int | None:
    """Index of the first of the sorted ``spans``, from ``first`` (the first one starting after ``previous``), that
    starts by ``at_most`` and ends after ``previous`` ends, or None."""
    k = first
    while k < len(spans) and spans[k][0] <= at_most:
        if spans[k][1] > previous[1]:
            return k
        k += 1
    return None


def _place(document: str, needle: str, pattern: re.Pattern[str], start_at: int, previous_end: int) -> Span | None:
    """The first occurrence of ``needle`` from ``start_at`` that ends after ``previous_end``, else the first one;
    exact text first, then the same words with any whitespace between them."""
    first: Span | None = None
    at = document.find(needle, start_at)
    while at >= 0:
        if at + len(needle) > previous_end:
            return at, at + len(needle)
        first = first or (at, at + len(needle))
        at = document.find(needle, at + 1)
    if first is not None:
        return first
    for match in pattern.finditer(document, start_at):
        if match.end() > previous_end:
            return match.span()
        first = first or match.span()
    return first


def _span_bound(value: Any) -> int:
    """An integer span bound (Python or numpy int); floats, bools and strings are refused, never truncated."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(value)
    return int(value)


def validate_spans(document: str, spans: Sequence[Sequence[int]]) -> list[Span]:
    """Check explicit spans: integer pairs with ``0 <= start < end <= len(document)``."""
    if isinstance(spans, (str, bytes)):
        raise InvalidInputError("spans must be a list of (start, end) pairs, got a string")
    checked: list[Span] = []
    for index, span in enumerate(spans):
        try:
            if isinstance(span, (str, bytes)) or len(span) != 2:
                raise TypeError(span)
            start, end = (_span_bound(v) for v in span)
        except TypeError:
            raise InvalidInputError(f"span {index} must be a (start, end) pair of ints, got {span!r}") from None
        if not 0 <= start < end <= len(document):
            raise InvalidInputError(
                f"span {index} = ({start}, {end}) is empty or outside the document of {len(document)} characters"
            )
        checked.append((start, end))
    if not checked:
        raise InvalidInputError("no chunk spans were given")
    return checked


ChunkerLike = Chunker | Callable[[str], Sequence[Any]] | str


def make_chunker(
    chunker: ChunkerLike, tokenizer: Any | None = None, chunk_size: int = 256, chunk_overlap: int = 0,
    language: str = AUTO,
) -> Chunker | Callable[[str], Sequence[Any]]:
    """Resolve a chunker name (``sentences``, ``paragraphs``, ``tokens``) or pass an object/callable through.
    ``language`` (``auto`` or an ISO 639 code) goes to the sentence chunker; it is checked whatever the chunker."""
    check_language(language)
    if not isinstance(chunker, str):
        if isinstance(chunker, Chunker) or callable(chunker):
            return chunker
        raise InvalidInputError(f"chunker must be a name, a Chunker or a callable, got {type(chunker).__name__}")
    if chunker in ("sentences", "sentence"):
        return SentenceChunker(language=language)
    if chunker in ("paragraphs", "paragraph"):
        return ParagraphChunker()
    if chunker in ("tokens", "token"):
        if tokenizer is None:
            raise InvalidInputError("the 'tokens' chunker needs a tokenizer; this backend has none, pass spans")
        return TokenChunker(tokenizer, size=chunk_size, overlap=chunk_overlap)
    raise InvalidInputError(f"unknown chunker {chunker!r}; use 'sentences', 'paragraphs', 'tokens' or an object")


def chunk_spans(document: str, chunker: Chunker | Callable[[str], Sequence[Any]]) -> list[Span]:
    """Apply a chunker. A callable may return spans or chunk texts (those are located in the document)."""
    produced = chunker.spans(document) if isinstance(chunker, Chunker) else list(chunker(document))
    if produced and all(isinstance(item, str) for item in produced):
        return spans_from_texts(document, produced)
    return validate_spans(document, produced)


def resolve_spans(
    document: str,
    chunker: ChunkerLike = "sentences",
    spans: Sequence[Sequence[int]] | None = None,
    tokenizer: Any | None = None,
    chunk_size: int = 256,
    chunk_overlap: int = 0,
    language: str = AUTO,
) -> list[Span]:
    """The spans late chunking uses for ``document``: explicit ``spans`` (checked) win over ``chunker``;
    ``language`` as for :func:`make_chunker`."""
    if not isinstance(document, str):
        raise InvalidInputError(f"document must be a string, got {type(document).__name__}")
    if not document.strip():
        raise InvalidInputError("cannot late-chunk an empty document")
    check_language(language)
    if spans is not None:
        return validate_spans(document, spans)
    found = chunk_spans(document, make_chunker(chunker, tokenizer, chunk_size, chunk_overlap, language))
    if not found:
        raise InvalidInputError("the chunker produced no chunks for the document")
    return found
