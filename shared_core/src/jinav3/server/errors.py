"""Error answers of ``jinav3 serve``: one exception type, one JSON body that Jina and OpenAI clients both read.

Every error body carries Jina's shape (``{code, detail, request_id}``, or ``{detail, errors}`` for 422) and
OpenAI's (``{"error": {"message", "type", "param", "code"}}``): the official ``openai`` client shows
``error.message``, Jina clients read ``detail``, and neither schema forbids the other's fields. Bodies are
rendered without NaN/Infinity (which JSON cannot carry), so an error answer can never itself fail.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from jinav3.server.schemas import ErrorResponse, FieldError, HTTPValidationError

# OpenAI's error ``type`` per status (what its SDK and other OpenAI-compatible servers use).
_OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    405: "invalid_request_error", 408: "timeout_error", 413: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_error", 503: "service_unavailable_error",
}


_MAX_DETAIL = 2000  # characters of an error's detail
REFUSAL_KEY = "jinav3.refusal"  # where an error answer leaves its reason in the ASGI scope (for the metrics)


class ApiProblem(Exception):
    """An error answer: HTTP status, the spec's error ``code`` and a ``detail`` that says what to change."""

    def __init__(
        self, status: int, code: str | None, detail: str, *, errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        if len(detail) > _MAX_DETAIL:  # a detail may quote the request (a model name): never the whole of it
            detail = detail[:_MAX_DETAIL] + f"... ({len(detail)} characters)"
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors, self.headers = status, code, detail, list(errors), headers
        self.total_errors: int | None = None  # a 422's count of problems when ``errors`` lists only some
        self.reason: str | None = None  # the refusal reason the metrics count (default: the code)


class ClientGone(Exception):
    """The client disconnected: nothing can be answered, and its queued work is dropped."""


MAX_LISTED = 32  # problems an error answer lists; the total is given beside them
_SUMMARISED = 5  # problems the ``detail`` sentence names
_MAX_TEXT = 300  # characters of one field name or message


def _bounded(error: FieldError) -> FieldError:
    return error.model_copy(update={"field": error.field[:_MAX_TEXT], "message": error.message[:_MAX_TEXT]})


def validation_problem(errors: Sequence[FieldError], total: int | None = None) -> ApiProblem:
    """A 422 listing at most :data:`MAX_LISTED` of the ``total`` problems (``len(errors)`` when not given), so an
    answer stays a few KiB whatever the request."""
    total = len(errors) if total is None else total
    listed = [_bounded(e) for e in errors[:MAX_LISTED]]
    summary = "; ".join(f"{e.field}: {e.message}" for e in listed[:_SUMMARISED])
    if total > _SUMMARISED:
        summary += f"; ... {total} problems in all ({len(listed)} listed in errors)"
    problem = ApiProblem(422, None, f"Invalid request: {summary}", errors=listed)
    problem.total_errors = total if total > len(listed) else None
    return problem


def request_id(connection: HTTPConnection) -> str:
    if not hasattr(connection.state, "request_id"):
        connection.state.request_id = uuid.uuid4().hex[:16]
    return connection.state.request_id


def finite(value: Any) -> Any:
    """``value`` with every NaN/Infinity replaced by its name as a string (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    """Strict JSON (``allow_nan=False``); a non-finite number becomes a string instead of an invalid body."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")


def problem_body(problem: ApiProblem, rid: str) -> dict[str, Any]:
    """Jina's error shape plus OpenAI's ``error`` object."""
    if problem.status == 422:
        body: dict[str, Any] = HTTPValidationError(detail=problem.detail, errors=problem.errors,
                                                   total_errors=problem.total_errors).model_dump(exclude_none=True)
    else:
        body = ErrorResponse(code=problem.code, detail=problem.detail, request_id=rid).model_dump(exclude_none=True)
    body["error"] = {
        "message": problem.detail,
        "type": _OPENAI_TYPES.get(problem.status, "server_error" if problem.status >= 500 else "invalid_request_error"),
        "param": problem.errors[0].field if problem.errors else None,
        "code": problem.code,
    }
    return finite(body)


def problem_response(connection: HTTPConnection, problem: ApiProblem) -> SafeJSONResponse:
    connection.scope[REFUSAL_KEY] = problem.reason or problem.code or (
        "validation" if problem.status == 422 else str(problem.status))
    rid = request_id(connection)
    headers = {"X-Request-ID": rid, **(problem.headers or {})}
    return SafeJSONResponse(problem_body(problem, rid), status_code=problem.status, headers=headers)
