"""Chunkers return character spans in document order; external chunk texts are located back in the document."""

from __future__ import annotations

import itertools

import pytest

from jinav3 import InvalidInputError, ParagraphChunker, SentenceChunker, TokenChunker, spans_from_texts
from jinav3.late_chunking.chunking import validate_spans


def texts(doc, spans):
    return [doc[s:e] for s, e in spans]


def test_sentences_multilingual_and_cjk():
    doc = "Berlin is big. Is it old? Yes! 東京は首都です。人口は多い！Ceci est «une phrase». Fin."
    assert texts(doc, SentenceChunker().spans(doc)) == [
        "Berlin is big.", "Is it old?", "Yes!", "東京は首都です。", "人口は多い！", "Ceci est «une phrase».", "Fin.",
    ]


def test_sentences_break_at_blank_lines_and_keep_quotes():
    doc = 'Title line\n\nHe said "stop." Then he left.\nSame paragraph'
    assert texts(doc, SentenceChunker().spans(doc)) == [
        "Title line", 'He said "stop."', "Then he left.", "Same paragraph",
    ]


def test_min_chars_merges_fragments():
    doc = "Fig. 3. A long sentence follows here. Another full sentence. End."
    assert texts(doc, SentenceChunker(min_chars=12).spans(doc)) == [
        "Fig. 3. A long sentence follows here.", "Another full sentence. End.",
    ]


def test_paragraphs():
    doc = "First para\nstill first.\n\n\n  Second para.  \n\nThird."
    assert texts(doc, ParagraphChunker().spans(doc)) == ["First para\nstill first.", "Second para.", "Third."]


def test_token_windows_cover_the_text(tiny_embedder):
    doc = "Berlin is the capital and largest city of Germany, both by area and by population. " * 3
    spans = TokenChunker(tiny_embedder.tokenizer, size=10, overlap=2).spans(doc)
    assert len(spans) > 3
    assert spans[0][0] == 0 and spans[-1][1] == len(doc.rstrip())
    assert all(b[0] < a[1] for a, b in itertools.pairwise(spans))  # overlapping neighbours
    with pytest.raises(InvalidInputError):
        TokenChunker(tiny_embedder.tokenizer, size=4, overlap=4)


def test_spans_from_texts_handles_overlap_repeats_and_whitespace():
    doc = "alpha beta gamma. alpha beta gamma.\n\nlast   words here"
    chunks = ["alpha beta gamma.", "alpha beta gamma.", "gamma. alpha", "last words here"]
    spans = spans_from_texts(doc, chunks)
    assert spans[0] == (0, 17) and spans[1] == (18, 35)
    assert doc[spans[2][0] : spans[2][1]] == "gamma. alpha"
    assert doc[spans[3][0] : spans[3][1]] == "last   words here"
    with pytest.raises(InvalidInputError, match="chunk 1"):
        spans_from_texts(doc, ["alpha", "not in there"])


@pytest.mark.parametrize("bad", [[(0, 0)], [(5, 3)], [(0, 999)], [("a", 2)], []])
def test_bad_spans_are_rejected(bad):
    with pytest.raises(InvalidInputError):
        validate_spans("a short document", bad)
