"""Request and response shapes of ``POST /v1/embeddings``, after the official Jina OpenAPI document.

The request follows ``EmbeddingsV3Request`` (unknown fields are rejected, as Jina's own server does) and also
accepts the aliases real clients send: ``encoding_type`` (LlamaIndex, Jina's pydantic alias) and OpenAI's
``encoding_format`` and ``user``. Responses follow ``EmbeddingResponse``; errors ``ErrorResponse`` and, for
422, ``HTTPValidationError``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

EmbeddingTypeName = Literal["float", "base64", "binary", "ubinary"]
TaskName = Literal["retrieval.query", "retrieval.passage", "text-matching", "classification", "separation"]


class TextDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def _input_form(value: Any) -> str:
    return "list" if isinstance(value, list) else _item_form(value)


def _item_form(value: Any) -> str:
    return "TextDoc" if isinstance(value, dict) else "str"


# ``input``'s union is picked by the value's JSON type, not tried branch by branch: a branch that fails copies the
# whole input into its error (10-20 ms of GIL for a 10 MB body). Errors name the picked form.
InputItem = Annotated[Annotated[str, Tag("str")] | Annotated[TextDoc, Tag("TextDoc")], Discriminator(_item_form)]
Input = Annotated[
    Annotated[str, Tag("str")] | Annotated[TextDoc, Tag("TextDoc")] | Annotated[list[InputItem], Tag("list")],
    Discriminator(_input_form),
]


class EmbeddingsRequest(BaseModel):
    """One embeddings request. ``output_types()`` and ``texts()`` resolve the aliases and input forms."""

    model_config = ConfigDict(extra="forbid")

    model: str
    input: Input
    task: TaskName | None = None
    dimensions: int | None = Field(default=None, gt=0)
    late_chunking: bool | None = None
    embedding_type: EmbeddingTypeName | list[EmbeddingTypeName] | None = None
    encoding_type: EmbeddingTypeName | list[EmbeddingTypeName] | None = None  # Jina's alias of embedding_type
    encoding_format: Literal["float", "base64"] | None = None  # OpenAI's name
    normalized: bool | None = True
    truncate: bool | None = False
    user: str | None = None  # OpenAI's end-user tag: accepted for compatibility, not used

    def texts(self) -> list[str]:
        items = self.input if isinstance(self.input, list) else [self.input]
        return [item.text if isinstance(item, TextDoc) else item for item in items]

    def output_types(self) -> tuple[list[str], bool]:
        """The requested encodings and whether the caller asked for a list (then each embedding is a dict).
        ``encoding_format="base64"`` with a binary or ubinary type asks for base64 of the packed bytes
        (``"binary+base64"``)."""
        given = {
            name: value
            for name, value in (
                ("embedding_type", self.embedding_type),
                ("encoding_type", self.encoding_type),
                ("encoding_format", self.encoding_format),
            )
            if value is not None
        }
        types = [v for k, v in given.items() if k != "encoding_format"]
        if given.get("encoding_format") == "base64" and types and all(v == types[0] for v in types) \
                and types[0] in ("binary", "ubinary"):  # OpenAI's SDK always sends base64: the packed bytes so
            return [f"{types[0]}+base64"], False
        if len({repr(v) for v in given.values()}) > 1:
            raise ValueError(f"{' and '.join(given)} disagree; send only one of them")
        value = next(iter(given.values()), "float")
        if isinstance(value, list):
            if not value:
                raise ValueError("embedding_type list is empty")
            return list(dict.fromkeys(value)), True
        return [value], False


class EmbeddingData(BaseModel):
    object: str = "embedding"
    index: int
    embedding: list[float] | list[int] | str | dict[str, Any]


class Usage(BaseModel):
    total_tokens: int
    prompt_tokens: int


class EmbeddingResponse(BaseModel):
    model: str
    object: str = "list"
    usage: Usage
    data: list[EmbeddingData]


class ErrorResponse(BaseModel):
    code: str | None = None
    detail: str
    request_id: str


class FieldError(BaseModel):
    field: str
    input: Any = None
    message: str
    type: str


class HTTPValidationError(BaseModel):
    detail: str
    errors: list[FieldError]
    total_errors: int | None = None  # every problem found; ``errors`` lists at most a few dozen


def parse_request(body: bytes | bytearray) -> EmbeddingsRequest:
    """The request in ``body``, or the ``ValidationError`` saying what is wrong with it.

    A body is parsed to Python objects first and validated after: ~1 ms of GIL for a 10 MB body, where validating
    the JSON directly took 3-7 ms. A body that fails is validated again from the JSON, so its errors keep JSON's
    wording ("a valid array", "an object"), not Python's; a body that is not JSON gets the error JSON validation
    would give, without a second parse."""
    try:
        value = pydantic_core.from_json(body)
    except ValueError as exc:  # not JSON: the error JSON validation gives, without parsing the body twice
        error = {"type": "json_invalid", "loc": (), "input": body, "ctx": {"error": str(exc)}}
        raise ValidationError.from_exception_data(EmbeddingsRequest.__name__, [error], "json") from None
    return validate_request(value, body)


def validate_request(value: Any, body: bytes | bytearray) -> EmbeddingsRequest:
    """The request of ``value`` (``body`` parsed); when it fails, the errors of validating ``body`` as JSON."""
    try:
        return EmbeddingsRequest.model_validate(value)
    except ValidationError:
        return EmbeddingsRequest.model_validate_json(body)


def _echo(value: Any) -> Any:
    """What an error may echo of a rejected value: short scalars only, never NaN/Infinity or huge numbers."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else None
    if isinstance(value, str):
        return value if len(value) <= 200 else None
    return None


def field_errors(error: ValidationError) -> list[FieldError]:
    """Pydantic's errors in the spec's ``{field, input, message, type}`` shape (``input`` only for scalars, so
    a huge input list is never echoed back; NaN/Infinity echoed as strings, since JSON cannot carry them)."""
    out: list[FieldError] = []
    for item in error.errors(include_url=False):
        value = _echo(item.get("input"))
        out.append(
            FieldError(
                field=".".join(str(part) for part in item["loc"]) or "body",
                input=value,
                message=item["msg"],
                type=item["type"],
            )
        )
    return out

