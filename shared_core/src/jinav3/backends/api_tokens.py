"""Counting tokens on the client: exactly with a local tokenizer when one is available, else a safe estimate.

The API counts tokens with the served model's tokenizer; the client needs counts to pack requests. With
``tokenizer=`` (a ``tokenizers.Tokenizer``, a ``tokenizer.json`` path or model folder) or, for
``jina-embeddings-v3``, the tokenizer found in the local Hugging Face cache (never downloaded), counts are exact.
Without one they are estimated from characters, on the high side (:func:`estimate_tokens`); the late-chunking
client still recovers when a server counts more than estimated (it re-plans smaller requests).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinav3.errors import InvalidInputError

log = logging.getLogger("jinav3.api")

JINA_V3_REPO = "jinaai/jina-embeddings-v3"
_CJK = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef]")
_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """An upper estimate of the XLM-R tokens of ``text``, from characters only.

    CJK and Hangul characters count one token each; each run of letters one token per 3 characters (real text
    averages 4 or more); digit runs one per 2 digits; every punctuation mark or symbol one; plus 10 %.
    """
    rest, cjk = _CJK.subn(" ", text)
    tokens = cjk
    for piece in _PIECES.finditer(rest):
        word = piece.group()
        tokens += math.ceil(len(word) / 2) if word[0].isdigit() else math.ceil(len(word) / 3)
    return math.ceil(tokens * 1.1) + 1


def _from_file(path: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _cached_jina_tokenizer() -> Any | None:
    """jina-embeddings-v3's tokenizer from the local Hugging Face cache, or None (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(JINA_V3_REPO, "tokenizer.json")
        return _from_file(Path(found)) if isinstance(found, str) else None
    except Exception:  # no huggingface_hub/tokenizers, unreadable cache: fall back to estimates
        return None


def load_tokenizer(spec: Any, model: str) -> Any | None:
    """The tokenizer to count with: ``spec`` itself (anything with ``encode_batch``), a ``tokenizer.json`` path or
    model folder, ``"auto"`` (jina-v3's cached tokenizer when ``model`` is jina-embeddings-v3), or None."""
    if spec is None:
        return None
    if isinstance(spec, str) and spec == "auto":
        return _cached_jina_tokenizer() if model == "jina-embeddings-v3" else None
    if hasattr(spec, "encode_batch"):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        path = path / "tokenizer.json" if path.is_dir() else path
        if path.is_file():
            return _from_file(path)
    raise InvalidInputError(
        f"tokenizer must be a tokenizers.Tokenizer, a tokenizer.json file or a model folder, 'auto' or None; "
        f"got {spec!r}"
    )


class TokenCounter:
    """Token counts of texts: exact with ``tokenizer``, else :func:`estimate_tokens`."""

    def __init__(self, tokenizer: Any | None) -> None:
        self.tokenizer = tokenizer

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def count(self, texts: Sequence[str], *, special_tokens: bool = True) -> list[int]:
        """Tokens per text (``special_tokens=False``: without ``<s>``/``</s>``, as a chunk inside a document)."""
        if self.tokenizer is None:
            return [estimate_tokens(text) for text in texts]
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=special_tokens)
        return [max(1, len(encoding.ids)) for encoding in encodings]

    def specials(self) -> int:
        """Tokens the tokenizer adds to any text (``<s>``/``</s>``, ``[CLS]``/``[SEP]``): what a server adds to a
        late-chunking request besides an instruction."""
        if self.tokenizer is None:
            return 0
        return len(self.tokenizer.encode_batch([""], add_special_tokens=True)[0].ids)
