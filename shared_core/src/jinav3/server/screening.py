"""Bounded validation errors: a body with thousands of problems is refused in milliseconds with a short answer.

Pydantic reports every problem of a body, and a 1 MB body whose ``input`` is 500,000 zeros has 500,000 of them
(5 s to collect, a 100 MB answer). Problems come in bulk only from containers: the ``input`` list (or object), the
list-valued ``embedding_type``/``encoding_type`` and unknown top-level fields. :func:`parse_screened` screens those
with one cheap pass and describes each bad element itself (no pydantic per element); the rest of the body (a few
scalar fields) is still validated by pydantic, so its errors keep their usual wording. The error answer then lists
at most :data:`MAX_LISTED` problems plus the total (:func:`jinav3.server.errors.validation_problem`).
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from pydantic import ValidationError

from jinav3.server.schemas import EmbeddingsRequest, FieldError, field_errors, parse_request, validate_request

MAX_LISTED = 32  # problems described in bulk (the error answer lists as many; see errors.MAX_LISTED)
_TYPE_LISTS = ("embedding_type", "encoding_type")
_MAX_TYPES = 16  # a list of encodings longer than this is nonsense (there are four)
_ITEM_MESSAGE = 'Input should be a string or an object {"text": <string>}'
TOKEN_IDS_MESSAGE = (
    "input holds token ids (integers), but this server takes text and tokenises it itself. langchain-openai's "
    "OpenAIEmbeddings sends tiktoken ids unless you set check_embedding_ctx_length=False; send the texts instead"
)


class ScreenedOut(Exception):
    """A body with problems in bulk: the first :data:`MAX_LISTED` problems and how many there are in all."""

    def __init__(self, errors: list[FieldError], total: int) -> None:
        super().__init__(f"{total} problems")
        self.errors, self.total = errors, total


def _good_item(item: Any) -> bool:
    if type(item) is str:
        return True
    return type(item) is dict and len(item) == 1 and type(item.get("text")) is str


def _bad_items(items: list[Any]) -> tuple[list[int], int]:
    """Indices of the items that are neither a string nor ``{"text": <string>}``: the first :data:`MAX_LISTED`
    of them exactly, the rest only counted (``map(type)`` and ``list.count`` run in C: ~20 ms for 500,000)."""
    kinds = list(map(type, items))
    count = len(kinds) - kinds.count(str)
    if kinds.count(dict):
        count -= sum(1 for item in items if type(item) is dict and _good_item(item))
    first: list[int] = []
    for i, item in enumerate(items):
        if len(first) >= MAX_LISTED or len(first) >= count:
            break
        if not _good_item(item):
            first.append(i)
    return first, count


def _token_ids(item: Any) -> bool:
    """Whether ``item`` looks like token ids: an integer, or a list of integers (what tiktoken-based clients send)."""
    if isinstance(item, list):
        return bool(item) and all(type(x) is int for x in item[:16])
    return type(item) is int


def _short(value: Any) -> Any:
    """What a hand-made error echoes: short strings and plain numbers only (never NaN/Infinity as numbers)."""
    if isinstance(value, bool) or value is None or (isinstance(value, int) and value.bit_length() <= 64):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, str) and len(value) <= 200:
        return value
    return None


def _bulk(value: dict[str, Any]) -> tuple[list[FieldError], int, dict[str, Any]]:
    """Problems of the containers (at most MAX_LISTED described, all counted) and the body without them."""
    listed: list[FieldError] = []
    total = 0
    pruned = dict(value)

    def note(field: str, item: Any, message: str, kind: str) -> None:
        nonlocal total
        total += 1
        if len(listed) < MAX_LISTED:
            listed.append(FieldError(field=field[:200], input=_short(item), message=message, type=kind))

    known = EmbeddingsRequest.model_fields
    for key in value:
        if key not in known:
            note(key, None, "Extra inputs are not permitted", "extra_forbidden")
            del pruned[key]
    items = value.get("input")
    if isinstance(items, dict) or type(items) is int:
        items = [items]
    if isinstance(items, list):
        first, count = _bad_items(items)
        if first and _token_ids(items[first[0]]):
            note("input", None, TOKEN_IDS_MESSAGE, "token_ids")
            total -= 1  # a hint, not one more problem
        for i in first:
            note(f"input.{i}", items[i], _ITEM_MESSAGE, "string_type")
        total += count - len(first)  # the rest are only counted
        if count:
            pruned["input"] = "-"
    for key in _TYPE_LISTS:
        kinds = value.get(key)
        if isinstance(kinds, list) and len(kinds) > _MAX_TYPES:
            note(key, None, f"at most {_MAX_TYPES} encodings may be listed (there are four)", "too_long")
            pruned[key] = None
    return listed, total, pruned


def parse_screened(body: bytes | bytearray) -> EmbeddingsRequest:
    """:func:`parse_request`, except that a body with problems in its containers raises :class:`ScreenedOut`
    after one pass over them, instead of pydantic's complete (unbounded) list."""
    try:
        value = pydantic_core.from_json(body)
    except ValueError:
        return parse_request(body)  # raises the usual json_invalid error
    if not isinstance(value, dict):
        return parse_request(body)
    listed, total, pruned = _bulk(value)
    if not total:
        return validate_request(value, body)
    try:
        EmbeddingsRequest.model_validate(pruned)
        rest: list[FieldError] = []
    except ValidationError as exc:
        rest = field_errors(exc)
    raise ScreenedOut((listed + rest)[:MAX_LISTED], total + len(rest))
