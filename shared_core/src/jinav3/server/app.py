"""``create_app``: the FastAPI application of ``jinav3 serve`` (the Jina embeddings contract over the local backend).

Routes: ``POST /v1/embeddings`` (Jina's ``EmbeddingsV3Request`` plus OpenAI's ``encoding_format``),
``GET /v1/models`` and ``GET /health``. Every error is JSON in the spec's shape: ``{code, detail, request_id}``,
or ``{detail, errors}`` for 422. Requests are tokenised and checked here, then embedded by the
:class:`MicroBatcher`, which shares forward passes between concurrent requests.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from jinav3 import late
from jinav3.backends.local import LocalBackend
from jinav3.chunking import Span
from jinav3.errors import InvalidInputError
from jinav3.matryoshka import encode, truncate_normalise
from jinav3.server.batcher import MicroBatcher, Overloaded
from jinav3.server.schemas import EmbeddingsRequest, ErrorResponse, FieldError, HTTPValidationError, field_errors

log = logging.getLogger("jinav3.server")


@dataclass(frozen=True)
class ServerConfig:
    """Limits and settings of one server. ``api_keys`` empty = no authentication."""

    model_name: str = "jina-embeddings-v3"
    api_keys: tuple[str, ...] = ()
    max_inputs: int = 2048
    max_body_bytes: int = 32 * 1024 * 1024
    max_request_tokens: int | None = None  # sum over a request's inputs; None = max_inputs x max_length
    max_batch_tokens: int = 65_536
    batch_wait_ms: float = 2.0
    max_pending: int = 100_000


class ApiProblem(Exception):
    """An error answer: HTTP status, the spec's error ``code`` and a ``detail`` that says what to change."""

    def __init__(
        self, status: int, code: str | None, detail: str, *, errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors, self.headers = status, code, detail, list(errors), headers


def _validation_problem(errors: Sequence[FieldError]) -> ApiProblem:
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return ApiProblem(422, None, f"Invalid request: {summary}", errors=errors)


def _request_id(request: Request) -> str:
    if not hasattr(request.state, "request_id"):
        request.state.request_id = uuid.uuid4().hex[:16]
    return request.state.request_id


def _problem_response(request: Request, problem: ApiProblem) -> JSONResponse:
    rid = _request_id(request)
    if problem.status == 422:
        body: Any = HTTPValidationError(detail=problem.detail, errors=problem.errors).model_dump()
    else:
        body = ErrorResponse(code=problem.code, detail=problem.detail, request_id=rid).model_dump(exclude_none=True)
    headers = {"X-Request-ID": rid, **(problem.headers or {})}
    return JSONResponse(body, status_code=problem.status, headers=headers)


def _check_auth(request: Request, keys: tuple[str, ...]) -> None:
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiProblem(401, "AUTH_MISSING_API_KEY", "Missing API key: send 'Authorization: Bearer <key>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "AUTH_INVALID_FORMAT", "Malformed Authorization header: use 'Bearer <key>'")
    if not any(hmac.compare_digest(token.strip().encode(), key.encode()) for key in keys):
        raise ApiProblem(401, "AUTH_INVALID_API_KEY", "Invalid API key")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = f"Request body is larger than the limit of {limit} bytes; send fewer or shorter inputs per request"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiProblem(400, "INPUT_BODY_TOO_LARGE", too_big)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ApiProblem(400, "INPUT_BODY_TOO_LARGE", too_big)
    return bytes(body)


def _output(vectors: np.ndarray, types: list[str], as_dict: bool) -> list[Any]:
    """Per input, the embedding in each requested encoding (a dict keyed by type when a list was asked)."""
    encoded = {}
    for kind in types:
        values = encode(vectors, kind)
        encoded[kind] = list(values) if kind == "base64" else values.tolist()
    if as_dict:
        return [{kind: encoded[kind][i] for kind in types} for i in range(len(vectors))]
    return encoded[types[0]]


class EmbeddingService:
    """What one ``POST /v1/embeddings`` does, independent of the web framework's plumbing."""

    def __init__(self, backend: LocalBackend, config: ServerConfig, batcher: MicroBatcher) -> None:
        self.backend, self.config, self.batcher = backend, config, batcher

    def _check(self, req: EmbeddingsRequest, texts: list[str]) -> None:
        if req.model != self.config.model_name:
            raise ApiProblem(
                400, "INPUT_MODEL_NOT_FOUND",
                f"Model '{req.model}' not found. Available models: {self.config.model_name}",
            )
        if not texts:
            raise _validation_problem([FieldError(field="input", input=None, message="input is empty",
                                                  type="too_short")])
        if len(texts) > self.config.max_inputs:
            raise ApiProblem(
                400, "INPUT_TOO_MANY_ITEMS",
                f'"input" length {len(texts)} is larger than the largest allowed size {self.config.max_inputs}',
            )
        full = self.backend.full_dimensions
        if req.dimensions is not None and req.dimensions > full:
            raise _validation_problem([FieldError(
                field="dimensions", input=req.dimensions, type="less_than_equal",
                message=f"dimensions must be between 1 and {full} for {self.config.model_name}",
            )])

    def _check_tokens(self, tokens: int) -> None:
        limit = self.config.max_request_tokens
        if limit is not None and tokens > limit:
            raise ApiProblem(
                400, "INPUT_TOO_MANY_TOKENS",
                f"the request has {tokens} tokens, more than the limit of {limit} per request; split it",
            )

    async def embed(self, req: EmbeddingsRequest) -> dict[str, Any]:
        texts = req.texts()
        self._check(req, texts)
        try:
            types, as_dict = req.output_types()
        except ValueError as exc:
            raise _validation_problem([FieldError(field="embedding_type", message=str(exc), type="value_error")]) \
                from None
        try:
            if req.late_chunking:
                raw, tokens = await self._late(texts, req.task)
            else:
                raw, tokens = await self._plain(texts, req.task, bool(req.truncate))
        except InvalidInputError as exc:
            raise ApiProblem(400, "INPUT_INVALID", str(exc)) from None
        except Overloaded as exc:
            raise ApiProblem(503, "SERVICE_UNAVAILABLE", f"Server busy: {exc}; retry shortly",
                             headers={"Retry-After": "1"}) from None
        vectors = truncate_normalise(raw, req.dimensions, req.normalized is not False)
        embeddings = _output(vectors, types, as_dict)
        return {
            "model": self.config.model_name,
            "object": "list",
            "usage": {"total_tokens": tokens, "prompt_tokens": tokens},
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)],
        }

    async def _plain(self, texts: list[str], task: str | None, truncate: bool) -> tuple[np.ndarray, int]:
        task_id = self.backend._task_id(task)
        try:
            sequences = await asyncio.to_thread(self.backend.encode_ids, texts, task, truncate=truncate)
        except InvalidInputError as exc:  # over max_length without truncate: name the knob
            raise InvalidInputError(f"{exc}".replace("truncate=True", '"truncate": true')) from None
        tokens = sum(len(s) for s in sequences)
        self._check_tokens(tokens)
        return await self.batcher.embed(sequences, task_id), tokens

    async def _late(self, chunks: list[str], task: str | None) -> tuple[np.ndarray, int]:
        """All inputs are consecutive chunks of one text, joined with one space, embedded as one sequence."""
        self.backend._task_id(task)
        spans: list[Span] = []
        at = 0
        for chunk in chunks:
            spans.append((at, at + len(chunk)))
            at += len(chunk) + 1
        document = " ".join(chunks)
        doc = await asyncio.to_thread(self.backend.tokenize_document, document, task)
        limit = self.backend.max_length
        if doc.length > limit:
            raise InvalidInputError(
                f"late-chunking request has {doc.length} tokens (all inputs joined as one text), more than the "
                f"model's {limit}; send fewer chunks per request"
            )
        self._check_tokens(doc.length)
        late.plan_pooling(doc, spans)  # rejects empty chunks before any model work
        return await self.batcher.late_chunk(document, spans, task, doc.length), doc.length


def create_app(backend: LocalBackend | Any, config: ServerConfig | None = None) -> FastAPI:
    """The ASGI app serving ``backend`` (a :class:`LocalBackend`, or an ``Embedder`` on one)."""
    backend = getattr(backend, "backend", backend)
    if not isinstance(backend, LocalBackend):
        raise InvalidInputError(f"the server needs a local backend, got {type(backend).__name__}")
    config = config or ServerConfig()
    batcher = MicroBatcher(
        backend, max_batch_tokens=config.max_batch_tokens, max_wait=config.batch_wait_ms / 1000,
        max_pending=config.max_pending,
    )
    service = EmbeddingService(backend, config, batcher)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.close()  # after uvicorn has finished the in-flight requests

    app = FastAPI(title="jinav3 embeddings server", version="1", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(ApiProblem)
    async def _on_problem(request: Request, problem: ApiProblem) -> JSONResponse:
        return _problem_response(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        return _problem_response(request, ApiProblem(exc.status_code, codes.get(exc.status_code), str(exc.detail)))

    @app.exception_handler(Exception)
    async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
        rid = _request_id(request)
        log.exception("request %s failed", rid)
        detail = f"Internal error ({type(exc).__name__}); contact the server's operator with the request_id"
        return _problem_response(request, ApiProblem(500, "INTERNAL_ERROR", detail))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": config.model_name, "pending_inputs": batcher.pending}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        _check_auth(request, config.api_keys)
        return {"object": "list", "data": [{
            "id": config.model_name, "object": "model", "created": 0, "owned_by": "jinav3",
            "dimensions": backend.full_dimensions, "max_tokens": backend.max_length,
            "tasks": list(backend.tasks), "max_inputs": config.max_inputs,
        }]}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        started = time.perf_counter()
        rid = _request_id(request)
        _check_auth(request, config.api_keys)
        body = await _read_body(request, config.max_body_bytes)
        try:
            req = EmbeddingsRequest.model_validate_json(body)
        except ValidationError as exc:
            raise _validation_problem(field_errors(exc)) from None
        answer = await service.embed(req)
        log.debug("request %s: %d inputs in %.1f ms", rid, len(answer["data"]), 1000 * (time.perf_counter() - started))
        return JSONResponse(answer, headers={"X-Request-ID": rid})

    return app
