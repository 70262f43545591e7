"""Chunkers on generated text: ASCII ?/! cut only before whitespace, CJK terminators always, any line-break style."""

from __future__ import annotations

import re
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import ParagraphChunker, SentenceChunker

WORDS = st.sampled_from(["Berlin", "x", "!=", "y", "Yahoo!Finance", "https://x.org/search?q=berlin&lang=de",
                         "a?b", "wow!!", "东京", "ok", "3.5", "e\u0301t\u00e9"])
BREAKS = st.sampled_from(["\n", "\r\n", "\r"])


@settings(max_examples=60, deadline=None)
@given(words=st.lists(WORDS, min_size=1, max_size=20), ends=st.lists(st.sampled_from(["", ".", "?", "!", "。", "！"]),
                                                                    min_size=20, max_size=20))
def test_sentence_cuts_only_at_real_ends(words, ends):
    text = " ".join(w + e for w, e in zip(words, ends, strict=False))
    spans = SentenceChunker().spans(text)
    assert spans == sorted(spans) and all(s < e for s, e in spans)
    for (_, end), (start, _) in pairwise(spans):
        before, gap = text[:end], text[end:start]
        # every cut follows a terminator: ASCII ones only before whitespace, full-width CJK ones anywhere
        assert (re.search(r"[.!?]$", before) and gap.strip() == "" and gap) or re.search(r"[。！？]$", before)
    covered = "".join(text[s:e] for s, e in spans)
    assert re.sub(r"\s", "", covered) == re.sub(r"\s", "", text)  # nothing but whitespace is lost


@settings(max_examples=60, deadline=None)
@given(paragraphs=st.lists(st.lists(WORDS, min_size=1, max_size=5).map(" ".join), min_size=1, max_size=6),
       line_break=BREAKS, blank=st.sampled_from(["", " ", "\t"]))
def test_paragraphs_split_at_blank_lines_in_every_line_break_style(paragraphs, line_break, blank):
    text = (line_break + blank + line_break).join(paragraphs)
    found = [text[s:e] for s, e in ParagraphChunker().spans(text)]
    assert found == [p.strip() for p in paragraphs]


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(st.lists(WORDS, min_size=1, max_size=4).map(" ".join), min_size=2, max_size=5),
       line_break=BREAKS)
def test_a_single_line_break_is_not_a_paragraph(lines, line_break):
    text = line_break.join(lines)
    assert ParagraphChunker().spans(text) == [(0, len(text))] or not text.strip()
