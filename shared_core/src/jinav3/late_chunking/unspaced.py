"""Sentences in scripts written without spaces between words, where a space or nothing at all may end a sentence:
Thai and Lao have no sentence punctuation, Khmer ends a sentence with ``។``. (Chinese and Japanese have ``。！？``,
which :mod:`jinav3.late_chunking.sentences` handles; Myanmar's ``။`` is sentencex's own.)

Thai needs a model to tell a space that ends a sentence from one between clauses: PyThaiNLP's CRF segmenter
(``crfcut``), maintained, offline, exact (its sentences put back together are the text). It is an optional extra
(``pip install pythainlp python-crfsuite``: 23 MB of wheels, 73 MB installed), so without it, and for Lao, which no
maintained small library segments, the chunker refuses with a message naming the alternatives rather than return a
whole document as one sentence.
"""

from __future__ import annotations

import os
import re

from jinav3.errors import InvalidInputError

UNSPACED_LANGUAGES = frozenset({"th", "lo", "km"})
_NAMES = {"th": "Thai", "lo": "Lao", "km": "Khmer"}
#: Khmer's khan and bariyoosan end a sentence; so do ? and ! there.
_KHMER_END = re.compile(r"[។៕?!]+(?=\s)")


def unspaced_cuts(text: str, language: str) -> list[int]:
    """Character positions where a sentence ends in ``text`` written in ``language`` (one of
    :data:`UNSPACED_LANGUAGES`)."""
    if language == "km":
        return [match.end() for match in _KHMER_END.finditer(text)]
    if language == "th":
        return _thai_cuts(text)
    raise _refusal(language, "no maintained library segments it into sentences")


def _thai_cuts(text: str) -> list[int]:
    os.environ.setdefault("PYTHAINLP_READ_ONLY", "1")  # its bundled model is all we use: no data folder in $HOME
    try:
        from pythainlp.tokenize import sent_tokenize
    except ImportError:
        raise _refusal("th", "install PyThaiNLP to split it: pip install pythainlp python-crfsuite") from None
    cuts: list[int] = []
    at = 0
    for sentence in sent_tokenize(text, engine="crfcut"):
        found = text.find(sentence, at)
        if found < 0:  # not the text's own characters: never guess a boundary
            raise InvalidInputError("PyThaiNLP returned a sentence that is not in the text; pass spans instead")
        at = found + len(sentence)
        cuts.append(at)
    return [cut for cut in cuts if 0 < cut < len(text)]


def _refusal(language: str, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"this document is {_NAMES[language]}, written without sentence punctuation, and {why}; or choose "
        f"chunker='paragraphs' or 'tokens' (or pass spans, or language= if it is not {_NAMES[language]})"
    )
