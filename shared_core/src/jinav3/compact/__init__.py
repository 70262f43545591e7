"""Compact vectors for stores: packed sign bits and int8 codes, with full-precision rescoring (numpy only)."""

from jinav3.compact.forms import (
    COMPACT_FORMS,
    Layout,
    binary_codes,
    bytes_per_vector,
    check_form,
    int8_codes,
    int8_scale,
)
from jinav3.compact.search import code_scores, hamming_distances, rescore, search, top_candidates

__all__ = [
    "COMPACT_FORMS",
    "Layout",
    "binary_codes",
    "bytes_per_vector",
    "check_form",
    "code_scores",
    "hamming_distances",
    "int8_codes",
    "int8_scale",
    "rescore",
    "search",
    "top_candidates",
]
