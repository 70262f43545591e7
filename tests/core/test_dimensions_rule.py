"""One rule for ``dimensions`` in the core and all three frameworks: an int (or numpy integer) of at least 1, or
None. ``"256"`` is refused everywhere with the core's message (LlamaIndex and LangChain used to coerce it through
pydantic while Haystack refused it); the adapters only pass the value to the core's check."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jinav3 import InvalidInputError
from jinav3.matryoshka import check_dimensions, validate_dimensions


def adapter(module: str, name: str) -> Any:
    """An adapter's class, or None where its distribution is not installed (the core part still runs)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


LLAMA_INDEX = adapter("llama_index.embeddings.jinav3", "JinaV3Embedding")
LANGCHAIN = adapter("langchain_jinav3", "JinaV3Embeddings")
HAYSTACK = adapter("haystack_integrations.components.embedders.jinav3", "JinaV3TextEmbedder")


def through_llama_index(dimensions: object) -> object:
    return LLAMA_INDEX(model_name="m", dimensions=dimensions).dimensions


def through_langchain(dimensions: object) -> object:
    return LANGCHAIN(model="m", dimensions=dimensions).dimensions


def through_haystack(dimensions: object) -> object:
    return HAYSTACK("m", dimensions=dimensions).dimensions


ADAPTERS = [through for through, cls in ((through_llama_index, LLAMA_INDEX), (through_langchain, LANGCHAIN),
                                         (through_haystack, HAYSTACK)) if cls is not None]


def expected(dimensions: object) -> int | str | None:
    """Independent statement of the rule: the int kept, or the start of the refusal."""
    if dimensions is None:
        return None
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)):
        return "dimensions must be an integer"
    return int(dimensions) if dimensions >= 1 else "dimensions must be at least 1"


values = st.one_of(
    st.none(), st.integers(min_value=-3, max_value=2048), st.integers(1, 1024).map(str),
    st.integers(1, 1024).map(float), st.booleans(), st.integers(1, 1024).map(np.int64),
    st.sampled_from(["256", " 256", "1e2", "", [256], (256,)]),
)


@settings(max_examples=40, deadline=None)
@given(dimensions=values)
def test_the_core_and_every_framework_agree(dimensions):
    rule = expected(dimensions)
    for entry in (check_dimensions, *ADAPTERS):
        if isinstance(rule, str):
            with pytest.raises((InvalidInputError, ValidationError), match=rule):
                entry(dimensions)
        else:
            got = entry(dimensions)
            assert got == rule and (got is None or type(got) is int), (entry.__name__, got)


def test_plain_encoder_width_errors_do_not_promise_trained_sizes():
    with pytest.raises(InvalidInputError, match=r"between 1 and 384 \(this model was not trained for Matryoshka"):
        validate_dimensions(512, 384, trained=())
    with pytest.raises(InvalidInputError, match=r"between 1 and 1024 \(trained sizes: 32, 64, 128"):
        validate_dimensions(2048, 1024)
