"""``parse_request`` (Python objects first, validated after) decides exactly as validating the JSON directly."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jinav3.server.schemas import EmbeddingsRequest, parse_request

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["float", "base64", "binary", "retrieval.query", "text-matching", "1",
                                           "true", "yes", "off", "7.0", ""]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["text", "x", "model"]), inner, max_size=2)),
    max_leaves=6)
fields = st.sampled_from(["model", "input", "task", "dimensions", "late_chunking", "embedding_type",
                          "encoding_type", "encoding_format", "normalized", "truncate", "user", "other"])
bodies = st.dictionaries(fields, values, max_size=6).map(lambda d: {"model": "m", "input": ["a"], **d} if
                                                          len(d) % 2 else d)


def _outcome(parse: Callable[[bytes], EmbeddingsRequest], body: bytes) -> tuple[str, Any]:
    try:
        return ("ok", parse(body).model_dump())
    except ValidationError as exc:
        return ("error", [(e["loc"], e["type"], e["msg"]) for e in exc.errors(include_url=False)])


@settings(max_examples=600, deadline=None)
@given(bodies)
def test_same_request_or_same_errors(body: dict) -> None:
    raw = json.dumps(body, allow_nan=True).encode()  # NaN/Infinity included: clients send them
    assert _outcome(parse_request, raw) == _outcome(EmbeddingsRequest.model_validate_json, raw)


def _damaged(body: dict, data: st.DataObject) -> bytes:
    """A real request body cut short or with one byte replaced: what a broken client or proxy sends."""
    raw = json.dumps(body).encode()
    at = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        return raw[:at]
    return raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1:]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode) | st.builds(_damaged, bodies, st.data()))
def test_broken_json_gives_the_same_error(raw: bytes) -> None:
    assert _outcome(parse_request, raw) == _outcome(EmbeddingsRequest.model_validate_json, raw)


def test_bytearray_bodies_parse() -> None:
    raw = bytearray(b'{"model": "m", "input": [{"text": "a"}, "b"], "dimensions": 8}')
    assert parse_request(raw).texts() == ["a", "b"]
