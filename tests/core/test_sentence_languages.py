"""Sentences by each document's own language rules: detected or named, on generated documents whose sentence
boundaries are known (abbreviations, numbers, ordinal dates, decimals, every kind of whitespace between), Thai by
PyThaiNLP, Lao refused with a message, and ``language=`` accepted wherever a chunker is chosen."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import InvalidInputError, SentenceChunker
from jinav3.late_chunking.chunking import resolve_spans
from jinav3.late_chunking.languages import detect_language
from tests.core.multilingual_sentences import SENTENCES, THAI, UNSPACED

GAPS = st.sampled_from([" ", "  ", "\n", " \n", "\t", "\u00a0 ", "\r\n", " \n\n", "\n\n"])


@st.composite
def documents(draw: st.DrawFn, language: str | None = None) -> tuple[str, str, list[str]]:
    """``(language, text, sentences)``: some of one language's sentences joined by whitespace."""
    language = language or draw(st.sampled_from(sorted(SENTENCES)))
    chosen = draw(st.lists(st.sampled_from(SENTENCES[language]), min_size=1, max_size=7))
    gaps = draw(st.lists(GAPS if language not in UNSPACED else st.sampled_from(["", " ", "\n"]),
                         min_size=len(chosen), max_size=len(chosen)))
    lead = draw(st.sampled_from(["", " ", "\n"]))
    return language, lead + "".join(s + g for s, g in zip(chosen, gaps, strict=True)), chosen


def found(text: str, language: str = "auto") -> list[str]:
    return [text[s:e] for s, e in SentenceChunker(language=language).spans(text)]


@settings(max_examples=150, deadline=None)
@given(documents())
def test_named_language_cuts_exactly_at_the_known_boundaries(document):
    language, text, sentences = document
    assert found(text, language) == sentences


@settings(max_examples=150, deadline=None)
@given(documents())
def test_detected_language_cuts_exactly_at_the_known_boundaries(document):
    language, text, sentences = document
    if detect_language(text) == language:  # one short sentence can pass for a neighbour (Spanish for Catalan)
        assert found(text) == sentences


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_every_language_is_detected_from_a_few_sentences(language):
    separator = "" if language in UNSPACED else " "
    assert detect_language(separator.join(SENTENCES[language][:4])) == language


@pytest.mark.parametrize(("text", "language", "expected"), [
    ("Die Mauer fiel am 9. November 1989 in Berlin. Am 3. Oktober 1990 kam die Einheit. Das war gut.", "de",
     ["Die Mauer fiel am 9. November 1989 in Berlin.", "Am 3. Oktober 1990 kam die Einheit.", "Das war gut."]),
    ("Он родился в 1990 г. в Москве. Потом он переехал в Санкт-Петербург.", "ru",
     ["Он родился в 1990 г. в Москве.", "Потом он переехал в Санкт-Петербург."]),
    ("See Eq. 4 and Vol. 3. It takes approx. 5 minutes.", "en",
     ["See Eq. 4 and Vol. 3.", "It takes approx. 5 minutes."]),
])
def test_the_issue_examples_are_whole_sentences_by_detection(text, language, expected):
    assert detect_language(text) == language
    assert found(text) == expected


def test_a_sentence_may_still_end_in_a_number_or_before_a_capital():
    assert found("He was 19. Then he left. The value was 3. 4 more came.", "en") == [
        "He was 19.", "Then he left.", "The value was 3.", "4 more came."]
    assert found("Er wurde 19. Dann zog er um.", "de") == ["Er wurde 19.", "Dann zog er um."]


def test_thai_is_split_by_pythainlp_with_exact_offsets():
    pytest.importorskip("pythainlp")
    text = " ".join(THAI * 3)
    spans = SentenceChunker().spans(text)
    assert len(spans) > 3
    assert all(text[s:e] == text[s:e].strip() and text[s:e] for s, e in spans)
    bounds = [0, *(b for span in spans for b in span), len(text)]
    assert bounds == sorted(bounds)
    assert all(not text[a:b].strip() for a, b in zip(bounds[::2], bounds[1::2], strict=True))  # only spaces between


def test_khmer_ends_sentences_at_its_own_full_stop():
    text = "ខ្ញុំចូលចិត្តបាយ។ ថ្ងៃនេះអាកាសធាតុល្អ។ អ្នកទៅណា?"
    assert found(text) == ["ខ្ញុំចូលចិត្តបាយ។", "ថ្ងៃនេះអាកាសធាតុល្អ។", "អ្នកទៅណា?"]


def test_lao_is_refused_with_a_message_naming_the_alternatives():
    with pytest.raises(InvalidInputError, match=r"Lao.*chunker='paragraphs' or 'tokens'"):
        SentenceChunker().spans("ຂ້ອຍມັກກິນເຂົ້າ ມື້ນີ້ອາກາດດີຫຼາຍ ຂ້ອຍໄປໂຮງຮຽນທຸກມື້")


def test_thai_without_pythainlp_is_refused_with_the_install_line():
    code = ("import sys; sys.modules['pythainlp'] = None\n"  # as on an install without the thai extra
            "from jinav3 import SentenceChunker\n"
            "SentenceChunker().spans('ผมชอบกินข้าวมาก ผมไปโรงเรียนทุกวัน วันนี้อากาศดีมาก')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "pip install pythainlp python-crfsuite" in result.stderr and "Thai" in result.stderr


@pytest.mark.parametrize("bad", ["english", "", "e", "de DE", 3])
def test_a_bad_language_is_a_clear_error_wherever_it_is_given(bad):
    with pytest.raises(InvalidInputError, match="ISO 639"):
        SentenceChunker(language=bad)
    with pytest.raises(InvalidInputError, match="ISO 639"):
        resolve_spans("Some text. More.", "paragraphs", language=bad)


def test_language_reaches_the_chunker_from_the_embedder(tiny_embedder):
    text = "Am 3. Oktober kam sie. Im 2. Stock wohnt er."
    assert tiny_embedder.chunk_spans(text, language="en") != tiny_embedder.chunk_spans(text, language="de")
    chunks = tiny_embedder.late_chunk(text, language="de")
    assert [c.text for c in chunks] == ["Am 3. Oktober kam sie.", "Im 2. Stock wohnt er."]
    assert [len(c) for c in tiny_embedder.late_chunk_many([text, text], language="en")] == [4, 4]


async def test_language_reaches_the_chunker_from_the_async_twins(tiny_embedder):
    text = "Am 3. Oktober kam sie. Im 2. Stock wohnt er."
    assert len(await tiny_embedder.alate_chunk(text, language="de")) == 2
    assert [len(c) for c in await tiny_embedder.alate_chunk_many([text], language="en")] == [4]


def test_the_chunk_command_takes_a_language_and_refuses_a_bad_one(tiny_checkpoint, tmp_path, capsys):
    from jinav3.cli import main

    doc = tmp_path / "doc.txt"
    doc.write_text("Am 3. Oktober kam sie. Im 2. Stock wohnt er.", encoding="utf-8")
    out = tmp_path / "chunks.jsonl"
    assert main(["chunk", str(doc), "--language", "de", "--model", str(tiny_checkpoint), "-o", str(out)]) == 0
    assert [json.loads(line)["text"] for line in out.read_text(encoding="utf-8").splitlines()] == [
        "Am 3. Oktober kam sie.", "Im 2. Stock wohnt er."]
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["chunk", str(doc), "--language", "German", "--model", str(tiny_checkpoint)])
    assert refused.value.code == 2 and "ISO 639" in capsys.readouterr().err
