"""Tokenising request inputs with bounded cost: a 10 MB text is refused (or truncated) after reading a prefix.

The rule. Let ``W = 2 x max_length`` characters (16,384 for an 8192-token model). An input (instruction
included) of at most ``W`` characters is tokenised in full, exactly as :meth:`LocalBackend.encode_ids` does.
A longer one is tokenised from a prefix of ``W`` characters, cut at the last whitespace of the prefix's second
half when there is one. If that prefix alone has more than ``max_length`` tokens, the input is over-long: it is
refused, or with ``truncate`` cut to the prefix's first tokens plus the closing special token. Otherwise (more
than 2 characters per token, as in most text) the prefix doubles and the test repeats, so the cost stays within
twice that of the shortest prefix that decides (about 4.5 x max_length characters for XLM-R on prose), and the
body limit bounds the rest. Tokenisation runs with the GIL released (``encode_batch``), so the event loop and the
model thread go on meanwhile.

Why it is exact: every tokenizer we serve splits on whitespace before its model runs (XLM-R's Metaspace,
BERT's pre-tokenizer), so a prefix cut at whitespace tokenises into exactly the first tokens of the whole text.
When the cut falls inside a word (no whitespace in the second half: CJK text, a giant word) the last word of
the prefix may tokenise differently; the refusal then requires a margin of ``_CUT_MARGIN`` tokens, and the
truncated ids (the first ``max_length``) lie far before the cut, where a Unigram segmentation of the prefix agrees
with the whole text's (``tests/api/test_server_limits.py`` compares both on generated texts, CJK included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jinav3.errors import InputTooLongError

FIRST_PREFIX_CHARS_PER_TOKEN = 2  # W / max_length: the first prefix tried
_CUT_MARGIN = 64  # tokens a mid-word cut may add to the last word of a prefix


def _cut(text: str, size: int) -> tuple[int, bool]:
    """Where to cut ``text`` near ``size`` characters, and whether the cut is at whitespace."""
    for at in range(size, size // 2, -1):
        if text[at].isspace():
            return at, True
    return size, False


def _encode(tokenizer: Any, text: str) -> Any:
    """``tokenizer.encode(text)`` with the GIL released: ``encode_batch`` lets go of it, ``encode`` does not, and a
    100 ms tokenisation holding it would stall the event loop and the model thread of a server."""
    return tokenizer.encode_batch([text])[0]


def _prefix_encoding(tokenizer: Any, text: str, limit: int) -> tuple[Any, int]:
    """``(encoding, characters)``: the whole text's encoding (``characters == len(text)``), or that of a prefix of
    that many characters which proves the text has more than ``limit`` tokens."""
    size = limit * FIRST_PREFIX_CHARS_PER_TOKEN
    while size < len(text):
        cut, at_space = _cut(text, size)
        encoding = _encode(tokenizer, text[:cut])
        if len(encoding.ids) > limit + (0 if at_space else _CUT_MARGIN):
            return encoding, cut
        size *= 2
    return _encode(tokenizer, text), len(text)


def _checked(index: int, ids: Sequence[int], limit: int, truncate: bool) -> np.ndarray:
    """A text's ids, truncated as the backend does, or ``InputTooLongError`` past ``limit`` without ``truncate``."""
    if len(ids) > limit and not truncate:
        raise InputTooLongError(
            f"text {index} has {len(ids)} tokens, more than max_length={limit}; pass truncate=True to cut it, or "
            "late-chunk it"
        )
    return _truncated(ids, limit)


def _truncated(ids: Sequence[int], limit: int) -> np.ndarray:
    """The local backend's truncation: the first ``limit - 1`` ids and the last one (the closing token)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.concatenate([ids[: limit - 1], ids[-1:]]) if len(ids) > limit else ids


def encode_inputs(backend: Any, texts: Sequence[str], task: str | None, *, truncate: bool) -> list[np.ndarray]:
    """Token ids per text, as ``backend.encode_ids`` gives them, with the cost bounded as the module explains."""
    tokenizer, limit, prefix = backend.tokenizer, backend.max_length, backend.instruction(task)
    window = limit * FIRST_PREFIX_CHARS_PER_TOKEN
    full = [prefix + text for text in texts]
    out: list[np.ndarray | None] = [None] * len(texts)
    for index, text in enumerate(full):
        if len(text) <= window:
            continue
        encoding, read = _prefix_encoding(tokenizer, text, limit)
        closing = bool(encoding.special_tokens_mask and encoding.special_tokens_mask[-1])
        if read == len(text):  # the probe read it all: as if it were short
            out[index] = _checked(index, encoding.ids, limit, truncate)
        elif not truncate:
            raise InputTooLongError(
                f"text {index} has at least {len(encoding.ids)} tokens (counted in its first {read} of {len(text)} "
                f"characters), more than max_length={limit}; pass truncate=True to cut it, or late-chunk it"
            )
        elif closing:
            out[index] = _truncated(encoding.ids, limit)
        else:  # no closing special token to keep: the last token is the whole text's
            out[index] = _checked(index, _encode(tokenizer, text).ids, limit, truncate)
    short = [i for i, ids in enumerate(out) if ids is None]
    for i, encoding in zip(short, tokenizer.encode_batch([full[i] for i in short]), strict=True):
        out[i] = _checked(i, encoding.ids, limit, truncate)
    return out  # type: ignore[return-value]


def check_document_length(backend: Any, document: str, task: str | None) -> None:
    """Refuse a late-chunking document longer than the context after tokenising at most a bounded prefix."""
    limit = backend.max_length
    text = backend.instruction(task) + document
    if len(text) <= limit * FIRST_PREFIX_CHARS_PER_TOKEN:
        return  # the caller tokenises it in full anyway
    encoding, read = _prefix_encoding(backend.tokenizer, text, limit)
    if read < len(text):
        raise InputTooLongError(
            f"late-chunking request has at least {len(encoding.ids)} tokens (all inputs joined as one text; counted "
            f"in its first {read} characters), more than the model's limit of {limit}; send fewer chunks per request"
        )
