"""Tokenise a huge text in pieces with exactly the tokens of one pass, so tokenising never needs memory for the
whole text at once (the tokenizer's own structures and Python lists cost ~400 bytes a token while they live).

Neighbouring pieces overlap by :data:`OVERLAP_CHARS` on each side of their cut. Both encodings of the overlap must
agree token for token (ids and offsets) over its first half after the cut, starting on a token that starts a word
(as the tokenizer's pre-tokenizer splits words) in both: there the two are in step, and the text is taken from the
first piece before that point and from the second after it. A word start matters because tokenizers treat each word
as a whole (WordPiece gives a word longer than ``max_input_chars_per_word`` one unknown token), so a word cut by a
piece's edge may tokenise differently and still agree past the cut. Where they do not agree (a word longer than the
overlap, a tokenizer that looks far ahead), the whole text is encoded in one pass instead, so the result is always
that of one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: Characters per piece; a text up to a piece and two overlaps long is encoded in one pass.
PIECE_CHARS = 262_144
#: Characters each piece reaches past its cut (and starts before it).
OVERLAP_CHARS = 2_048

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # ids, offsets (n, 2), special-token mask
Pieced = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # the same and whether each token starts a word


def _arrays(encoding: Any, shift: int = 0) -> Arrays:
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    if shift:
        offsets += shift
    return (np.asarray(encoding.ids, dtype=np.int64), offsets, np.asarray(encoding.special_tokens_mask, dtype=bool))


def _pieced(encoding: Any, shift: int = 0) -> Pieced:
    words = encoding.word_ids
    starts = np.array([w is not None and (i == 0 or words[i - 1] != w) for i, w in enumerate(words)], dtype=bool)
    return (*_arrays(encoding, shift), starts)


def in_pieces(text: str) -> bool:
    """Whether :func:`encode` tokenises ``text`` a piece at a time (and so can report progress)."""
    return len(text) > PIECE_CHARS + 2 * OVERLAP_CHARS


def encode(tokenizer: Any, text: str, progress: Callable[[int], object] | None = None) -> Arrays:
    """Ids, character offsets and special-token mask of ``text`` with the tokenizer's special tokens, as one
    ``tokenizer.encode`` gives them, computed a piece at a time for long texts. ``progress`` is called with the
    characters done after each piece (a ``tqdm.update``)."""
    if not in_pieces(text):
        return _arrays(tokenizer.encode_batch([text])[0])
    return _in_pieces(tokenizer, text, progress) or _arrays(tokenizer.encode_batch([text])[0])


def _in_pieces(tokenizer: Any, text: str, progress: Callable[[int], object] | None = None) -> Arrays | None:
    """The pieced encoding, or None where two pieces could not be brought in step."""
    progress = progress or (lambda _: None)
    cuts = list(range(PIECE_CHARS, len(text) - PIECE_CHARS // 2, PIECE_CHARS))
    first = _pieced(tokenizer.encode_batch([text[: cuts[0] + OVERLAP_CHARS]])[0])
    progress(cuts[0])
    content = np.flatnonzero(~first[2])
    if not len(content):
        return None
    end = int(content[-1]) + 1  # the post-processor's closing special tokens come back at the very end
    tail = tuple(a[end:] for a in first)
    current = tuple(a[:end] for a in first)
    done: list[tuple[np.ndarray, ...]] = []
    for k, cut in enumerate(cuts):
        start = cut - OVERLAP_CHARS
        stop = cuts[k + 1] + OVERLAP_CHARS if k + 1 < len(cuts) else len(text)
        following = _pieced(tokenizer.encode_batch([text[start:stop]], add_special_tokens=False)[0], start)
        step = _in_step(current, following, cut)
        if step is None:
            return None
        mine, theirs = step
        done.append(tuple(a[:mine] for a in current))
        current = tuple(a[theirs:] for a in following)
        progress((cuts[k + 1] if k + 1 < len(cuts) else len(text)) - cut)
    done += [current, tail]
    return tuple(np.concatenate([part[i] for part in done]) for i in range(3))  # type: ignore[return-value]


def _in_step(before: tuple[np.ndarray, ...], after: tuple[np.ndarray, ...], cut: int) -> tuple[int, int] | None:
    """Token indices (in ``before``, in ``after``) of the first token at or past ``cut`` that starts a word in both
    encodings, where they agree on every token from there up to half the overlap past the cut; None when they do
    not."""
    check_until = cut + OVERLAP_CHARS // 2
    i, j = (_first_word_start(enc, cut) for enc in (before, after))
    i_end, j_end = (int(np.searchsorted(enc[1][:, 0], check_until, side="left")) for enc in (before, after))
    if i_end - i != j_end - j or i_end <= i:
        return None
    same = all(np.array_equal(a[i:i_end], b[j:j_end]) for a, b in zip(before, after, strict=True))
    clean = (i == 0 or before[1][i - 1, 1] <= before[1][i, 0]) and (j == 0 or after[1][j - 1, 1] <= after[1][j, 0])
    return (i, j) if same and clean else None


def _first_word_start(encoding: tuple[np.ndarray, ...], cut: int) -> int:
    """Index of the first token starting a word at or past character ``cut`` (the token count if none does)."""
    found = np.flatnonzero((encoding[1][:, 0] >= cut) & encoding[3])
    return int(found[0]) if len(found) else len(encoding[0])
