"""Checking the values a server answered, before any of them reaches the caller.

A broken server answers with a well-formed body: a bf16 or fp16 overflow gives NaN or ±Inf, a failing replica all
zeros, a proxy or a mis-configured server vectors of another width or scale, a faulty meter absurd token counts.
Decoding alone would pass all of that on, and one NaN poisons every cosine of a vector store. So every row is
checked: finite, of the model's width, not all zero when the caller wants normalised vectors (a zero vector has no
direction), of unit norm when the server was asked to normalise; and the reported usage must be a whole number of
tokens between 0 and what the text sent could cost.

Unit norm is checked to :data:`NORM_TOLERANCE`: a server that computes in bf16 (8 significant bits) and normalises
before rounding its answer is off by at most 2^-9 ≈ 0.2 % in norm even when every component rounds the same way,
2^-8 ≈ 0.4 % if it truncates instead of rounding (fp16: 2^-11); an int8 server quantises weights and activations
but pools and normalises in float, so its error is smaller still. 1 % is 2.5 times the worst bf16 case, yet a
vector the server forgot to normalise, or cut to fewer dimensions without normalising again (a norm of about
sqrt(d/full)), is far outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Largest accepted ``|norm - 1|`` of a vector the server was asked to normalise (see the module docstring).
NORM_TOLERANCE = 0.01
#: Tokens an input may cost besides its text: special tokens, the task instruction (jina-v3's longest is about 15
#: tokens), a tokenizer's word-start marker; generous, as only absurd counts are refused.
_TOKENS_PER_INPUT = 64


def row_problem(row: np.ndarray, width: int, *, nonzero: bool, unit: bool) -> str | None:
    """What is wrong with one answered vector, or None: not ``width`` values, a NaN or ±Inf, all zeros where
    ``nonzero`` (normalised output asked), a norm outside ``1 ± NORM_TOLERANCE`` where ``unit`` (the server was
    asked to normalise)."""
    if row.shape != (width,):
        return f"a vector of {row.size} values, expected {width} (the model's width, full_dimensions)"
    if not np.isfinite(row).all():
        bad = int(np.flatnonzero(~np.isfinite(row))[0])
        return f"a non-finite value ({row[bad]}) at position {bad}"
    if nonzero and not row.any():
        return "an all-zero vector, which has no direction to normalise"
    if unit:
        norm = float(np.linalg.norm(row.astype(np.float64)))
        if abs(norm - 1.0) > NORM_TOLERANCE:
            return f"a vector of norm {norm:.6g} although normalised vectors were asked for (1 ± {NORM_TOLERANCE})"
    return None


def first_bad_row(rows: Sequence[np.ndarray], width: int, *, nonzero: bool, unit: bool) -> tuple[int, str] | None:
    """``(index, problem)`` of the first row :func:`row_problem` refuses, or None when all are sound."""
    for index, row in enumerate(rows):
        problem = row_problem(row, width, nonzero=nonzero, unit=unit)
        if problem is not None:
            return index, problem
    return None


def token_ceiling(inputs: Sequence[str]) -> int:
    """The most tokens a request of ``inputs`` can cost: no tokenizer makes more than one token per UTF-8 byte
    (byte-level BPE, SentencePiece's byte fallback, WordPiece by character), plus what each input adds besides its
    text; a late-chunking request's joining spaces are bytes too."""
    return sum(len(text.encode("utf-8")) + 1 + _TOKENS_PER_INPUT for text in inputs)


def usage_problem(usage: Any, inputs: Sequence[str]) -> str | None:
    """What is wrong with an answer's ``usage`` object, or None. A missing usage (or one without
    ``total_tokens``) is allowed (the caller's count is then marked incomplete); a present count must be an integer
    from 0 to :func:`token_ceiling` of the inputs."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return f"a usage that is not an object ({type(usage).__name__})"
    total = usage.get("total_tokens")
    if total is None:
        return None
    if isinstance(total, bool) or not isinstance(total, int):
        return f"a usage of {total!r} tokens, not an integer"
    ceiling = token_ceiling(inputs)
    if not 0 <= total <= ceiling:
        shown = f"{total:.3g}" if abs(total) >= 10**12 else str(total)
        return f"a usage of {shown} tokens, outside 0..{ceiling} (what the {len(inputs)} inputs sent can cost)"
    return None
