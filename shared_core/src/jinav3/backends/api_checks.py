"""Checking the values a server answered, before any of them reaches the caller.

A broken server answers with a well-formed body: a bf16 or fp16 overflow gives NaN or ±Inf, a failing replica all
zeros, a proxy or a mis-configured server vectors of another width or absurd scale, a faulty meter absurd token
counts. Decoding alone would pass all of that on, and one NaN poisons every cosine of a vector store. So every row
is checked: finite, of the model's width and, when the caller wants normalised vectors, of a norm the client's own
normalisation turns into one; and the reported usage must be a whole number of tokens between 0 and what the text
sent could cost.

The client asks raw vectors and normalises them itself (so ``jinav3 serve`` answers equal the local backend's bit
for bit), so the norm check normalises each row exactly as the :class:`jinav3.Embedder` will (float32,
:func:`jinav3.matryoshka.truncate_normalise`) and refuses it unless the result's norm is within
:data:`NORM_TOLERANCE` of one. A sound vector from any server, fp32, bf16 or int8 alike (their values are only
coarser), comes out within about 1e-7 of unit norm, float32 rounding; 1e-3 leaves a wide margin for that, yet refuses
what float32 cannot normalise: an all-zero vector (no direction; it would stay zero), one whose norm vanishes
(below the 1e-12 floor, or squares lost to underflow) or overflows (squares past 3.4e38: it would come out zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jinav3.matryoshka import truncate_normalise

#: Largest accepted ``|norm - 1|`` of a row normalised as the Embedder normalises it (see the module docstring).
NORM_TOLERANCE = 1e-3
#: Tokens an input may cost besides its text: special tokens, the task instruction (jina-v3's longest is about 15
#: tokens), a tokenizer's word-start marker; generous, as only absurd counts are refused.
_TOKENS_PER_INPUT = 64


def row_problem(row: np.ndarray, width: int, *, normalisable: bool) -> str | None:
    """What is wrong with one answered vector, or None: not ``width`` values, a NaN or ±Inf, or, where
    ``normalisable`` (the caller wants normalised vectors), a vector the Embedder's float32 normalisation does not
    turn into one of norm ``1 ± NORM_TOLERANCE``."""
    if row.shape != (width,):
        return f"a vector of {row.size} values, expected {width} (the model's width, full_dimensions)"
    if not np.isfinite(row).all():
        bad = int(np.flatnonzero(~np.isfinite(row))[0])
        return f"a non-finite value ({row[bad]}) at position {bad}"
    if normalisable:
        if not row.any():
            return "an all-zero vector, which has no direction to normalise"
        with np.errstate(over="ignore", under="ignore"):
            norm = float(np.linalg.norm(truncate_normalise(row[None])[0].astype(np.float64)))
        if abs(norm - 1.0) > NORM_TOLERANCE:
            raw = float(np.linalg.norm(row.astype(np.float64)))
            return (f"a vector of norm {raw:.3g} that float32 normalisation cannot make a unit vector (it came out "
                    f"{norm:.3g}), although normalised vectors were asked for")
    return None


def first_bad_row(rows: Sequence[np.ndarray], width: int, *, normalisable: bool) -> tuple[int, str] | None:
    """``(index, problem)`` of the first row :func:`row_problem` refuses, or None when all are sound."""
    for index, row in enumerate(rows):
        problem = row_problem(row, width, normalisable=normalisable)
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
