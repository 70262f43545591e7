"""Seals: a late-chunked vector bound to the context it is valid for.

A late-chunked vector is right only for one chunk text, at one place, in one document, embedded one way. The
frameworks copy, split, clean, persist, reload and re-embed their objects freely, so the vector travels with a
:class:`Seal` of that context: fingerprints of the chunk text and the whole document text, a sketch of the vector, the
chunk's
character offsets, the vector space (model, width, task, encoding), and the document's identity where the framework
gives it one (``source``: so equal texts of two documents are two chunks, not one). The seal is one short string, so
it lives in any store's metadata (Chroma and Qdrant take strings) and survives save and reload. Every place that
meets a chunk again checks it (:func:`check_seal`), wherever it runs: a seal needs no call stack, thread or process
to be known.

A seal is evidence, not a secret: it catches accidents (a splitter after the late-chunking step, a cleaner, a plain
re-embedding, a vector copied onto a child), not forgery.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jinav3.errors import BrokenSealError

#: The metadata key under which every adapter stores a chunk's seal.
SEAL_KEY = "jinav3_seal"
#: The marker adapters set before seals existed (its value named the vector space): read only to refuse it.
LEGACY_SEAL_KEY = "jinav3_late_chunked"
_VERSION = 1
_DIGITS = 32  # hex digits of sha256 kept: 128 bits, far beyond accidental collisions


def fingerprint(text: str) -> str:
    """A short, stable fingerprint of a text (sha256 of its UTF-8 bytes, hex)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGITS]


#: Directions of the vector sketch, and how far a stored copy may drift from the sealed one along each: stores keep
#: float32 or normalise again for cosine (Qdrant), far below this, or half precision (at most 4.9e-4). A different
#: vector (a plain re-embedding, another chunk's) moves by about |Δv|/sqrt(width) per direction, 0.0014 at width
#: 1024 for a cosine of 0.999, so 32 directions all miss it with probability below 1e-15.
_SKETCH = 32
_SKETCH_TOLERANCE = 6e-4


@functools.lru_cache(maxsize=32)
def _directions(width: int) -> np.ndarray:
    """``_SKETCH`` fixed ±1/sqrt(width) directions for vectors of ``width``: the signs are bits of SplitMix64 over
    (direction, index), the same on every machine and NumPy version, and unrelated between directions."""
    with np.errstate(over="ignore"):
        x = (np.arange(_SKETCH, dtype=np.uint64)[:, None] << np.uint64(32)) + np.arange(width, dtype=np.uint64)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return np.where((x >> np.uint64(63)) == 1, 1.0, -1.0) / np.sqrt(width)


def vector_fingerprint(vector: Any) -> str:
    """A sketch of a vector's direction: its projections on 16 fixed directions, after unit normalisation. Unlike
    a hash it survives what stores do to vectors (float32, a second normalisation, half precision), and it tells
    any other vector apart (see ``_SKETCH_TOLERANCE``)."""
    values = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(values))
    unit = values / norm if norm > 0 else values
    return ",".join(f"{p:.6f}" for p in _directions(len(values)) @ unit) + f"/{len(values)}"


def _readable_sketch(sketch: str) -> bool:
    projections, _, width = sketch.rpartition("/")
    try:
        return width.isdigit() and len([float(p) for p in projections.split(",")]) == _SKETCH
    except ValueError:
        return False


def _same_vector(sketch: str, other: str) -> bool:
    """Whether two sketches describe the same vector (same width, every projection within the tolerance)."""
    (mine, width), (theirs, other_width) = (v.rsplit("/", 1) for v in (sketch, other))
    if width != other_width:
        return False
    return all(abs(float(a) - float(b)) <= _SKETCH_TOLERANCE
               for a, b in zip(mine.split(","), theirs.split(","), strict=True))


@dataclass(frozen=True)
class Seal:
    """What one late-chunked vector is valid for."""

    space: str
    document: str
    start: int
    end: int
    text: str
    vector: str
    source: str = ""

    @classmethod
    def of(cls, *, space: str, document: str, start: int, end: int, text: str, vector: Any,
           source: str = "") -> Seal:
        """The seal of ``vector``, pooled over ``text`` = ``document[start:end]`` in vector ``space``; ``source``
        names the document (its id in the framework; empty when it has none)."""
        if document[start:end] != text:
            raise ValueError(f"the chunk text {text[:40]!r} is not document[{start}:{end}]")
        return cls(space, fingerprint(document), start, end, fingerprint(text), vector_fingerprint(vector),
                   str(source))

    def encode(self) -> str:
        """The seal as one short string (what adapters store under :data:`SEAL_KEY`)."""
        return json.dumps([_VERSION, self.space, self.document, self.start, self.end, self.text, self.vector,
                           self.source], separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, value: object) -> Seal:
        """The seal stored in ``value``; an unreadable one is a :class:`BrokenSealError`."""
        try:
            version, space, document, start, end, text, vector, *rest = json.loads(str(value))
            source = rest[0] if rest else ""
            if version != _VERSION or len(rest) > 1 or not all(
                isinstance(v, str) for v in (space, document, text, vector, source)
            ) or not _readable_sketch(vector):
                raise ValueError
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
                raise ValueError
        except (ValueError, TypeError) as exc:
            raise BrokenSealError(f"unreadable late-chunking seal {str(value)[:80]!r} (metadata {SEAL_KEY!r} was "
                                  "edited, or written by another version)") from exc
        return cls(space, document, start, end, text, vector, source)

    def mismatches(self, *, text: str | None = None, vector: Any = None, space: str | None = None,
                   start: int | None = None, end: int | None = None, document: str | None = None,
                   source: str | None = None) -> list[str]:
        """What no longer matches, in words (empty when everything given matches). Arguments left as None are not
        checked; ``vector`` is checked whenever given."""
        found = []
        if text is not None and fingerprint(text) != self.text:
            found.append("its text was changed (split, cleaned or rewritten) after late chunking")
        if (start is not None and start != self.start) or (end is not None and end != self.end):
            found.append(f"its offsets [{start}, {end}) are not the sealed [{self.start}, {self.end})")
        if vector is not None and not _same_vector(self.vector, vector_fingerprint(vector)):
            found.append("its vector is not the late-chunked one (re-embedded, overwritten or copied from another "
                         "chunk)")
        if space is not None and space != self.space:
            found.append(f"it was late-chunked in vector space {self.space!r}, not {space!r}")
        if document is not None and fingerprint(document) != self.document:
            found.append("its document's text changed since it was late-chunked")
        if source is not None and str(source) != self.source:
            found.append(f"it was late-chunked for document {self.source!r}, not {source!r}")
        return found


def claims_late_chunk(metadata: Mapping[str, Any]) -> bool:
    """Whether an object with ``metadata`` says it carries a late-chunked vector (a seal, or the older marker)."""
    return SEAL_KEY in metadata or LEGACY_SEAL_KEY in metadata


def seal_string(*, space: str, document: str, start: int, end: int, text: str, vector: Any, source: str = "") -> str:
    """The encoded seal of one chunk (shorthand for ``Seal.of(...).encode()``)."""
    return Seal.of(space=space, document=document, start=start, end=end, text=text, vector=vector,
                   source=source).encode()


def check_seal(value: object, *, what: str, fix: str, text: str | None = None, vector: Any = None,
               space: str | None = None, start: int | None = None, end: int | None = None,
               document: str | None = None, source: str | None = None) -> Seal:
    """The seal in ``value`` when everything given matches it; else a :class:`BrokenSealError` that names ``what``
    (the object, e.g. "node 'abc'"), every mismatch, and ``fix`` (the composition that works)."""
    seal = Seal.decode(value)
    found = seal.mismatches(text=text, vector=vector, space=space, start=start, end=end, document=document,
                            source=source)
    if found:
        raise BrokenSealError(f"{what} carries a late-chunked vector that is no longer valid: {'; '.join(found)}. "
                              f"{fix}")
    return seal
