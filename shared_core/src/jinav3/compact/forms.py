"""The compact forms a store can hold instead of float32: packed sign bits and int8 codes.

Why: a bit vector takes 1/32 of the bytes of float32 and an int8 vector 1/4, and a store searches them faster.
Both are derived from the vectors the embedder returns (late-chunked, Matryoshka-truncated, unit length), so the
width is chosen first (``dimensions=d``) and the form afterwards. The bits are exactly the core's ``ubinary``
encoding (:func:`jinav3.matryoshka.encode`): bit set where the value is > 0, eight per byte, most significant
first, which is also the order of ``np.packbits``, pgvector's ``bit`` and Milvus's ``BINARY_VECTOR``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jinav3.errors import InvalidInputError
from jinav3.matryoshka import encode

#: What a collection may hold: full-precision floats, packed sign bits, or int8 codes.
COMPACT_FORMS: tuple[str, ...] = ("float", "binary", "int8")

#: The int8 codes of unit vectors use one scale for every dimension, so the dot product of two code vectors stays
#: proportional to the float dot product (what a store's inner product over INT8 vectors computes). Values past the
#: calibration quantile are clipped to ±127.
INT8_LIMIT = 127


def _float_rows(vectors: np.ndarray) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.dtype.kind != "f":
        raise InvalidInputError(f"expected a 2-D array of float vectors, got {array.dtype} of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError("vectors contain NaN or infinite values")
    return array.astype(np.float32, copy=False)


def binary_codes(vectors: np.ndarray) -> np.ndarray:
    """Packed sign bits, ``uint8`` of shape ``(n, ceil(width / 8))``: the core's ``ubinary`` encoding."""
    return np.asarray(encode(_float_rows(vectors), "ubinary"), dtype=np.uint8)


def int8_scale(vectors: np.ndarray, quantile: float = 0.999) -> float:
    """The scale that maps the ``quantile`` of ``|value|`` over ``vectors`` (a calibration sample, typically the
    corpus) to 127. One scale for all dimensions keeps dot products proportional."""
    if not 0.5 <= quantile <= 1.0:
        raise InvalidInputError(f"quantile must be between 0.5 and 1, got {quantile}")
    rows = _float_rows(vectors)
    if rows.size == 0:
        raise InvalidInputError("int8_scale needs at least one vector to calibrate on")
    top = float(np.quantile(np.abs(rows), quantile))
    if top <= 0.0:
        raise InvalidInputError("cannot calibrate int8 codes on vectors that are all zero")
    return INT8_LIMIT / top


def int8_codes(vectors: np.ndarray, scale: float) -> np.ndarray:
    """``round(value * scale)`` clipped to ±127, as ``int8`` of shape ``(n, width)``; ``scale`` from
    :func:`int8_scale`. Queries and documents must share the scale."""
    if not np.isfinite(scale) or scale <= 0:
        raise InvalidInputError(f"int8 scale must be a positive finite number, got {scale}")
    rows = _float_rows(vectors)
    return np.clip(np.rint(rows * np.float32(scale)), -INT8_LIMIT, INT8_LIMIT).astype(np.int8)


def bytes_per_vector(width: int, form: str) -> int:
    """Storage of one vector's values: 4 bytes a dimension as float32, 1 as int8, one bit (whole bytes) as binary."""
    check_form(form)
    return {"float": 4 * width, "int8": width, "binary": -(-width // 8)}[form]


def check_form(form: str) -> str:
    if form not in COMPACT_FORMS:
        raise InvalidInputError(f"unknown compact form {form!r}; use one of {', '.join(map(repr, COMPACT_FORMS))}")
    return form


@dataclass(frozen=True)
class Layout:
    """What one collection holds: vectors of ``width`` dimensions in ``form``. A store records it when the
    collection is made, and every later write or query is checked against it, so a collection made for another
    width or form is refused rather than filled with vectors that rank wrongly."""

    width: int
    form: str

    def __post_init__(self) -> None:
        check_form(self.form)
        if isinstance(self.width, bool) or not isinstance(self.width, (int, np.integer)) or self.width < 1:
            raise InvalidInputError(f"width must be a positive integer, got {self.width!r}")

    def __str__(self) -> str:
        what = {"float": "float vectors", "binary": "binary codes", "int8": "int8 codes"}[self.form]
        return f"{what} of {self.width} dimensions ({bytes_per_vector(self.width, self.form)} bytes each)"

    @classmethod
    def of(cls, vectors: np.ndarray, width: int | None = None) -> Layout:
        """The layout of an array: float rows, ``int8`` codes, or packed ``uint8`` bits (whose width is ``width``
        when given, else eight per byte)."""
        array = np.asarray(vectors)
        if array.ndim != 2:
            raise InvalidInputError(f"expected a 2-D array of vectors, got shape {array.shape}")
        if array.dtype == np.uint8:
            bits = width if width is not None else 8 * array.shape[1]
            if -(-bits // 8) != array.shape[1]:
                raise InvalidInputError(f"{array.shape[1]} bytes of packed bits cannot hold {bits} dimensions")
            return cls(bits, "binary")
        if array.dtype == np.int8:
            return cls(array.shape[1], "int8")
        if array.dtype.kind == "f":
            return cls(array.shape[1], "float")
        raise InvalidInputError(f"vectors of dtype {array.dtype} are none of the compact forms {COMPACT_FORMS}")

    def require(self, other: Layout, where: str = "the collection") -> None:
        """Refuse ``other`` unless it is this layout, naming both."""
        if other != self:
            raise InvalidInputError(f"{where} holds {self}, not {other}: make a collection for that width and form "
                                    "(one collection holds one width and one form)")
