"""The sentence chunker knows abbreviations, initials, numbers and ellipses (SciFact is full of them), in several
languages, and keeps exact character spans."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import SentenceChunker


def sentences(text: str, language: str = "en") -> list[str]:
    return [text[s:e] for s, e in SentenceChunker(language=language).spans(text)]


@pytest.mark.parametrize(("language", "expected"), [
    ("en", ["Infection by C. albicans was studied in mice.", "Smith et al. reported it (Fig. 3).",
            "Item No. 5 is 3.14 mm wide, e.g. in rats.", "J. R. R. Tolkien wrote it...", "Or did he?", "Yes."]),
    ("de", ["Das ist z. B. ein Test.", "Am 3. Oktober war Feiertag.", "Dr. Müller kam.", "Ende."]),
    ("fr", ["Il a dit « bonjour ».", "Il habite à Paris, av. Foch, p. ex. au no 5.", "Fin."]),
    ("ru", ["Он родился в 1990 г. в Москве.", "Это было давно.", "Конец."]),
    ("zh", ["今天天气很好。", "明天会下雨吗？", "是的！"]),
    ("ja", ["今日は晴れです。", "明日は雨でしょう！", "本当？"]),
])
def test_abbreviations_numbers_and_ellipses_do_not_end_a_sentence(language, expected):
    separators = "" if language in ("zh", "ja") else " "
    text = separators.join(expected)
    assert sentences(text, language) == expected


def test_scifact_abstract():
    text = ("Candida albicans (C. albicans) is a fungus. The MIC of drug No. 5 was 0.25 μg/ml, i.e. 4-fold lower "
            "than that of fluconazole (p < 0.05). These results... suggest a new therapy.\n\nConclusion: it works.")
    assert sentences(text) == [
        "Candida albicans (C. albicans) is a fungus.",
        "The MIC of drug No. 5 was 0.25 μg/ml, i.e. 4-fold lower than that of fluconazole (p < 0.05).",
        "These results... suggest a new therapy.", "Conclusion: it works.",
    ]


SENTENCES = st.sampled_from([
    "Infection by C. albicans was studied.", "See e.g. the appendix.", "Item No. 5 was tested.",
    "The ratio was 3.14 overall.", "J. R. R. Tolkien wrote books.", "Growth of E. coli stopped.",
    "Results were mixed, i.e. unclear.", "Smith et al. disagreed.", "Is it true?", "It works!", "东京很大。",
])


@settings(max_examples=60, deadline=None)
@given(chosen=st.lists(SENTENCES, min_size=1, max_size=8), gaps=st.lists(st.sampled_from([" ", "  ", "\n", " \n\n"]),
                                                                          min_size=8, max_size=8))
def test_generated_text_is_cut_exactly_between_its_sentences(chosen, gaps):
    text = "".join(s + g for s, g in zip(chosen, gaps, strict=False)).rstrip()
    spans = SentenceChunker().spans(text)
    assert [text[s:e] for s, e in spans] == chosen  # exact spans: each sentence's text, in order, nothing else
