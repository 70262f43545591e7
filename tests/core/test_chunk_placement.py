"""Chunk texts placed back in their document when the text repeats itself (logs, tables, FAQ boilerplate, lyrics):
documents are generated from a few repeated pieces, chunks are consecutive groups of pieces, so the true places are
known by construction and compared with :func:`jinav3.spans_from_texts`."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import InvalidInputError, spans_from_texts

PIECES = ["Yes.", "Answer: see above.", "| 1 | 2 |", "ERROR disk full", "la la la", "Yes", "東京。", "e\u0301"]
SEPARATORS = [" ", "\n", "  ", "\n\n", "\t", " \n"]


@st.composite
def chunked_documents(draw: st.DrawFn, overlap: bool) -> tuple[str, list[str], list[tuple[int, int]]]:
    """(document, chunk texts, true spans): pieces drawn from a handful (so they repeat), joined by whitespace; each
    chunk is a run of consecutive pieces; runs follow each other (``overlap``: a run may start inside the previous
    one, but always reaches past its end)."""
    n = draw(st.integers(2, 30))
    pieces = draw(st.lists(st.sampled_from(PIECES[: draw(st.integers(1, len(PIECES)))]), min_size=n, max_size=n))
    separators = draw(st.lists(st.sampled_from(SEPARATORS), min_size=n - 1, max_size=n - 1))
    lead, tail = draw(st.sampled_from(["", " ", "\n"])), draw(st.sampled_from(["", " ", "\n"]))
    starts, position = [], len(lead)
    for i, piece in enumerate(pieces):
        starts.append(position)
        position += len(piece) + (len(separators[i]) if i < n - 1 else 0)
    document = lead + "".join(p + s for p, s in zip(pieces, [*separators, ""], strict=True)) + tail
    runs, first, previous_last = [], 0, -1
    while first < n:
        low = max(first, previous_last + 1)
        last = draw(st.integers(low, min(n - 1, low + 4)))
        runs.append((first, last))
        if last == n - 1:
            break
        first, previous_last = (draw(st.integers(first + 1, last + 1)) if overlap else last + 1), last
    spans = [(starts[a], starts[b] + len(pieces[b])) for a, b in runs]
    return document, [document[a:b] for a, b in spans], spans


@settings(max_examples=300, deadline=None)
@given(case=chunked_documents(overlap=False))
def test_disjoint_chunks_of_repeated_text_land_where_they_were_cut(case):
    document, chunks, truth = case
    assert spans_from_texts(document, chunks) == truth


@settings(max_examples=300, deadline=None)
@given(case=chunked_documents(overlap=True))
def test_overlapping_chunks_of_repeated_text_cover_the_document_in_order(case):
    """With overlap the same texts may fit more than one way; any placement found holds each chunk's text, keeps
    the chunks' order, never leaves text between them, and never puts a chunk inside its predecessor."""
    document, chunks, _ = case
    spans = spans_from_texts(document, chunks)
    assert [document[a:b] for a, b in spans] == chunks
    assert not document[: spans[0][0]].strip() and not document[spans[-1][1]:].strip()
    for (a0, b0), (a1, b1) in itertools.pairwise(spans):
        assert a0 < a1 and b1 > b0 and not document[b0:a1].strip()


def test_the_issues_examples():
    assert spans_from_texts("Yes. Yes. Yes. Yes. Yes. Yes.", ["Yes. Yes."] * 3) == [(0, 9), (10, 19), (20, 29)]
    lines = "\n".join(["Answer: see above."] * 12)
    spans = spans_from_texts(lines, ["Answer: see above.\nAnswer: see above."] * 6)
    assert spans == [(38 * i, 38 * i + 37) for i in range(6)]


def test_a_splitter_that_drops_text_still_gets_ordered_places_and_a_missing_chunk_is_named():
    """No placement covers the document (the splitter dropped '|'): each chunk goes after its predecessor."""
    assert spans_from_texts("a | a | a", ["a", "a", "a"]) == [(0, 1), (4, 5), (8, 9)]
    with pytest.raises(InvalidInputError, match="chunk 1"):
        spans_from_texts("a b", ["a", "zzz"])
