"""``create_app``: the FastAPI application of ``jinav3 serve`` (the Jina embeddings contract over the local backend).

Routes: ``POST /v1/embeddings`` (Jina's ``EmbeddingsV3Request`` plus OpenAI's ``encoding_format``),
``GET /v1/models``, ``GET /health`` and ``GET /metrics`` (:mod:`jinav3.server.metrics`). Every error is JSON in
Jina's shape and OpenAI's at once (see :mod:`jinav3.server.errors`); the browser guards of
:mod:`jinav3.server.guards` run before any route. Requests are tokenised and checked here (with bounded cost, see
:mod:`jinav3.server.tokens`), then embedded by the :class:`MicroBatcher`, which shares forward passes between
concurrent requests. A request whose client disconnects is cancelled and its queued work dropped; a stopping
server answers what it will not compute with 503 (see :meth:`EmbeddingService.begin_shutdown`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from jinav3.backends.local_base import LocalBase
from jinav3.errors import InputTooLongError, InvalidInputError
from jinav3.late_chunking.chunking import Span
from jinav3.matryoshka import encode, truncate_normalise
from jinav3.model.choice import fallback_model_dir
from jinav3.server.batcher import EXPRESS_TOKENS, MicroBatcher, Overloaded, ShuttingDown
from jinav3.server.errors import (
    ApiProblem,
    ClientGone,
    problem_response,
    request_id,
    validation_problem,
)
from jinav3.server.guards import LOOPBACK_NAMES, BrowserGuard, check_auth
from jinav3.server.metrics import MetricsMiddleware, ServerMetrics
from jinav3.server.responses import VectorsResponse, json_rows
from jinav3.server.schemas import EmbeddingsRequest, FieldError, field_errors
from jinav3.server.screening import ScreenedOut, parse_screened
from jinav3.server.tokens import check_document_length, encode_inputs
from jinav3.tasks import TASKS

T = TypeVar("T")
_PARSE_OFF_LOOP_BYTES = 256 * 1024
#: Requests with at most this many characters are tokenised on the event loop (at most about 0.25 ms), not on a
#: thread (a hop there and back costs about as much again, on every query).
_TOKENISE_ON_LOOP_CHARS = 512
_MAX_CHARS_PER_TOKEN = 8  # more characters per token than real text has: a low estimate of a request's tokens

log = logging.getLogger("jinav3.server")


@dataclass(frozen=True)
class ServerConfig:
    """Limits and settings of one server. ``api_keys`` empty = no authentication; ``model_name`` None = the
    served model's own name (``jina-embeddings-v3`` for a jina-v3 checkpoint, else the model's folder or hub
    name). The timeouts and ``max_connections`` guard against slow or idle clients (see ``jinav3.server.run``)."""

    model_name: str | None = None
    api_keys: tuple[str, ...] = ()
    max_inputs: int = 2048
    max_body_bytes: int = 32 * 1024 * 1024
    max_request_tokens: int | None = None  # sum over a request's inputs; None = max_inputs x max_length
    max_batch_tokens: int = 65_536
    batch_wait_ms: float = 0.0  # an idle server computes a request at once; company is what arrives meanwhile
    express_tokens: int = EXPRESS_TOKENS  # requests this small run on the express lane (graph engines; 0 = none)
    max_pending: int = 100_000
    max_queue_seconds: float | None = 60.0  # estimated seconds of queued work beyond which requests get 503 at once
    calibration_tokens: int = 512  # tokens of the timed warm-up at start that seeds admission (0: none)
    header_timeout: float = 10.0  # seconds from connecting (or the previous answer) to a complete request head
    max_head_bytes: int = 64 * 1024  # request line and headers; beyond it a 431 and the connection is closed
    max_headers: int = 100  # header lines per request; beyond it a 431
    body_timeout: float = 30.0  # seconds to receive a request body, once the handler starts reading it
    keep_alive_timeout: float = 5.0  # idle seconds before a kept-alive connection is closed
    max_connections: int = 1024  # open connections; beyond it the longest-idle one (or the newcomer) gets a 503
    allowed_hosts: tuple[str, ...] | None = None  # Host header names accepted; None = loopback names ("*": any)


def served_model_name(backend: LocalBase) -> str:
    """The name a server reports for ``backend``: jina-embeddings-v3 for a checkpoint with its task adapters,
    else the last part of the hub id or folder (the bundled MiniLM reports ``all-MiniLM-L6-v2``)."""
    if backend.tasks:
        return "jina-embeddings-v3"
    path = Path(backend.model_name)
    fallback = fallback_model_dir()
    if fallback is not None and path.resolve() == fallback.resolve():
        return "all-MiniLM-L6-v2"
    parts = [part for part in path.parts if part not in ("/", "model", "snapshots") and not part.startswith(".")]
    for part in reversed(parts):
        if part.startswith("models--"):
            return part.split("--")[-1]
    return parts[-1] if parts else str(backend.model_name)


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused past ``limit`` bytes or when it takes longer than ``timeout`` seconds to arrive."""
    declared = request.headers.get("content-length")
    too_big = f"Request body is larger than the limit of {limit} bytes; send fewer or shorter inputs per request"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiProblem(400, "INPUT_BODY_TOO_LARGE", too_big, headers={"Connection": "close"})
    pieces: list[bytes] = []  # joined once at the end: growing one buffer copies a 10 MB body twice more
    size = 0
    deadline = time.monotonic() + timeout
    stream = request.stream().__aiter__()
    while True:
        try:
            piece = await asyncio.wait_for(stream.__anext__(), max(0.0, deadline - time.monotonic()))
        except StopAsyncIteration:
            return b"".join(pieces)
        except asyncio.TimeoutError:
            raise ApiProblem(408, "REQUEST_TIMEOUT", f"the request body did not arrive within {timeout:g} s; send "
                             "it faster or in smaller requests", headers={"Connection": "close"}) from None
        except ClientDisconnect:
            raise ClientGone("while sending the body") from None
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            raise ApiProblem(400, "INPUT_BODY_TOO_LARGE", too_big, headers={"Connection": "close"})


async def _until_disconnected(request: Request) -> None:
    """Return when the client closes its connection (the body has been read: only a disconnect can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``await work``, cancelling it (and so dropping its queued jobs) when the client goes away first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    raise ClientGone("while its request was waiting")


def _output(vectors: np.ndarray, types: list[str], as_dict: bool) -> list[Any]:
    """Per input, the embedding in each requested encoding (a dict keyed by type when a list was asked)."""
    encoded = {}
    for kind in types:
        packed, _, as_base64 = kind.partition("+")
        values = encode(vectors, packed)
        if as_base64:  # binary/ubinary bytes as base64 (OpenAI's encoding_format on a packed type)
            encoded[kind] = [base64.b64encode(row.tobytes()).decode("ascii") for row in values]
        else:
            encoded[kind] = list(values) if kind == "base64" else json_rows(values)
    if as_dict:
        return [{kind: encoded[kind][i] for kind in types} for i in range(len(vectors))]
    return encoded[types[0]]


class EmbeddingService:
    """What one ``POST /v1/embeddings`` does, independent of the web framework's plumbing."""

    def __init__(self, backend: LocalBase, config: ServerConfig, batcher: MicroBatcher, model_name: str,
                 metrics: ServerMetrics) -> None:
        self.backend, self.config, self.batcher, self.model_name = backend, config, batcher, model_name
        self.metrics = metrics
        self.stopping = False

    def begin_shutdown(self, grace: float | None) -> None:
        """The server is stopping: refuse new requests now, and answer the ones still waiting with 503 shortly
        before the ``grace`` seconds uvicorn gives them run out (None: wait for them)."""
        if self.stopping:
            return
        self.stopping = True
        log.info("shutting down: %d inputs in flight, %s s to finish them", self.batcher.pending, grace)
        if grace is not None:
            margin = min(1.0, grace / 4)
            asyncio.get_running_loop().call_later(
                max(0.0, grace - margin), self.batcher.abort, ShuttingDown("the server is shutting down")
            )

    def _busy(self, detail: str, retry_after: int, reason: str) -> ApiProblem:
        """A 503 counted under ``reason``; while stopping it also closes the connection, so a client's retry goes to
        the next server instead of holding this one's keep-alive connection open through the whole shutdown grace."""
        headers = {"Retry-After": str(retry_after)}
        if self.stopping:
            headers["Connection"] = "close"
        problem = ApiProblem(503, "SERVICE_UNAVAILABLE", detail, headers=headers)
        problem.reason = reason
        return problem

    def _check(self, req: EmbeddingsRequest, texts: list[str]) -> None:
        if req.model != self.model_name:
            raise ApiProblem(
                400, "INPUT_MODEL_NOT_FOUND",
                f"Model '{req.model}' not found. Available models: {self.model_name}",
            )
        if not texts:
            raise validation_problem([FieldError(field="input", input=None, message="input is empty",
                                                 type="too_short")])
        if len(texts) > self.config.max_inputs:
            raise ApiProblem(
                400, "INPUT_TOO_MANY_ITEMS",
                f'"input" length {len(texts)} is larger than the largest allowed size {self.config.max_inputs}',
            )
        full = self.backend.full_dimensions
        if req.dimensions is not None and req.dimensions > full:
            raise validation_problem([FieldError(
                field="dimensions", input=req.dimensions if req.dimensions < 2**63 else None,
                type="less_than_equal", message=f"dimensions must be between 1 and {full} for {self.model_name}",
            )])

    def _check_tokens(self, tokens: int) -> None:
        limit = self.config.max_request_tokens
        if limit is not None and tokens > limit:
            raise ApiProblem(
                400, "INPUT_TOO_MANY_TOKENS",
                f"the request has {tokens} tokens, more than the limit of {limit} per request; split it",
            )

    async def embed(self, req: EmbeddingsRequest) -> dict[str, Any]:
        if self.stopping:
            raise self._busy("the server is shutting down; retry on another instance or later", 1, "shutting_down")
        texts = req.texts()
        self._check(req, texts)
        try:
            types, as_dict = req.output_types()
        except ValueError as exc:
            raise validation_problem([FieldError(field="embedding_type", message=str(exc), type="value_error")]) \
                from None
        try:
            if req.late_chunking:
                raw, tokens = await self._late(texts, req.task)
            else:
                raw, tokens = await self._plain(texts, req.task, bool(req.truncate))
        except InputTooLongError as exc:
            raise ApiProblem(400, "INPUT_TOO_MANY_TOKENS", str(exc)) from None
        except InvalidInputError as exc:
            raise ApiProblem(400, "INPUT_INVALID", str(exc)) from None
        except Overloaded as exc:
            wait = self.batcher.retry_after()
            raise self._busy(f"Server busy: {exc}; retry in about {wait} s", wait, exc.reason) from None
        except ShuttingDown as exc:
            raise self._busy(f"{exc}; this request was not computed, retry it", 1, "shutting_down") from None
        self.metrics.inputs.inc(len(texts))
        self.metrics.tokens.inc(tokens)
        vectors = truncate_normalise(raw, req.dimensions, req.normalized is not False)
        embeddings = _output(vectors, types, as_dict)
        return {
            "model": self.model_name,
            "object": "list",
            "usage": {"total_tokens": tokens, "prompt_tokens": tokens},
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)],
        }

    async def _plain(self, texts: list[str], task: str | None, truncate: bool) -> tuple[np.ndarray, int]:
        task_id = self.backend._task_id(task)
        limit = self.backend.max_length
        # before tokenising (seconds for a heavy body on a busy machine): a low estimate of its tokens
        self.batcher.admit(sum(min(len(text) // _MAX_CHARS_PER_TOKEN + 2, limit) for text in texts))
        try:
            if sum(map(len, texts)) <= _TOKENISE_ON_LOOP_CHARS:  # a query: tens of microseconds, less than a hop
                sequences = encode_inputs(self.backend, texts, task, truncate=truncate)
            else:
                sequences = await asyncio.to_thread(encode_inputs, self.backend, texts, task, truncate=truncate)
        except InputTooLongError as exc:  # over max_length without truncate: name the knob
            raise InputTooLongError(f"{exc}".replace("truncate=True", '"truncate": true')) from None
        tokens = sum(len(s) for s in sequences)
        self._check_tokens(tokens)
        return await self.batcher.embed(sequences, task_id), tokens

    async def _late(self, chunks: list[str], task: str | None) -> tuple[np.ndarray, int]:
        """All inputs are consecutive chunks of one text, joined with one space, embedded as one sequence."""
        self.backend._task_id(task)
        spans: list[Span] = []
        at = 0
        for i, chunk in enumerate(chunks):
            if not chunk:
                raise InvalidInputError(f"chunk {i} (characters {at}..{at}) is empty; late chunking needs text in "
                                        "every input")
            spans.append((at, at + len(chunk)))
            at += len(chunk) + 1
        document = " ".join(chunks)
        await asyncio.to_thread(check_document_length, self.backend, document, task)
        # Chunked, tokenised and planned here, so a document that cannot be late-chunked (blank, an empty chunk)
        # is this request's own 400 and never joins a shared sub-round.
        prepared = (await asyncio.to_thread(self.backend.prepare, [document], [spans], task, True))[0]
        doc = prepared.tokens
        limit = self.backend.max_length
        if doc.length > limit:
            raise InputTooLongError(
                f"late-chunking request has {doc.length} tokens (all inputs joined as one text), more than the "
                f"model's limit of {limit}; send fewer chunks per request"
            )
        self._check_tokens(doc.length)
        return await self.batcher.late_chunk(document, spans, task, doc.length, prepared), doc.length


def _models(backend: LocalBase, config: ServerConfig, name: str) -> dict[str, Any]:
    """``GET /v1/models``: what this server accepts. ``tasks`` are the task names accepted; ``task_adapters``
    those that change the output (a plain encoder has none and ignores ``task``)."""
    return {"object": "list", "data": [{
        "id": name, "object": "model", "created": 0, "owned_by": "jinav3",
        "dimensions": backend.full_dimensions, "max_tokens": backend.max_length,
        "tasks": list(TASKS), "task_adapters": list(backend.tasks), "max_inputs": config.max_inputs,
    }]}


def create_app(backend: LocalBase | Any, config: ServerConfig | None = None) -> FastAPI:
    """The ASGI app serving ``backend`` (a local backend of either engine, or an ``Embedder`` on one)."""
    backend = getattr(backend, "backend", backend)
    if not isinstance(backend, LocalBase):
        raise InvalidInputError(f"the server needs a local backend, got {type(backend).__name__}")
    config = config or ServerConfig()
    name = config.model_name or served_model_name(backend)
    batcher = MicroBatcher(
        backend, max_batch_tokens=config.max_batch_tokens, max_wait=config.batch_wait_ms / 1000,
        max_pending=config.max_pending, max_queue_seconds=config.max_queue_seconds,
        express_tokens=config.express_tokens,
    )
    metrics = ServerMetrics(lambda: batcher.pending, lambda: batcher.pending_tokens)
    batcher.metrics = metrics
    service = EmbeddingService(backend, config, batcher, name, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(batcher.calibrate, config.calibration_tokens)  # before the first request
        batcher.start()
        try:
            yield
        finally:
            await batcher.close()  # after uvicorn has finished (or given up on) the in-flight requests

    app = FastAPI(title="jinav3 embeddings server", version="1", lifespan=lifespan)
    app.state.service = service
    app.state.config = config
    app.state.metrics = metrics
    app.add_middleware(BrowserGuard, allowed_hosts=config.allowed_hosts or LOOPBACK_NAMES, api_keys=config.api_keys)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts the guards' answers too

    @app.exception_handler(ApiProblem)
    async def _on_problem(request: Request, problem: ApiProblem) -> Response:
        return problem_response(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        problem = ApiProblem(exc.status_code, codes.get(exc.status_code), str(exc.detail), headers=exc.headers)
        return problem_response(request, problem)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [FieldError(field=".".join(map(str, e.get("loc", ()))) or "body", message=str(e.get("msg")),
                             type=str(e.get("type"))) for e in exc.errors()]
        return problem_response(request, validation_problem(errors))

    @app.exception_handler(ClientGone)
    @app.exception_handler(ClientDisconnect)
    async def _on_gone(request: Request, exc: Exception) -> Response:
        where = f" {exc}" if isinstance(exc, ClientGone) else " while sending the body"
        log.info("request %s: client disconnected%s; its work was dropped", request_id(request), where)
        return Response(status_code=499)  # never delivered: the connection is gone

    @app.exception_handler(Exception)
    async def _on_crash(request: Request, exc: Exception) -> Response:
        rid = request_id(request)
        log.exception("request %s failed", rid)
        detail = f"Internal error ({type(exc).__name__}); contact the server's operator with the request_id"
        return problem_response(request, ApiProblem(500, "INTERNAL_ERROR", detail))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        status = "stopping" if service.stopping else "ok"
        return {"status": status, "model": name, "pending_inputs": batcher.pending}

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        check_auth(request.headers, config.api_keys)
        text, media_type = metrics.render()
        return Response(text, media_type=media_type)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_auth(request.headers, config.api_keys)
        return _models(backend, config, name)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        started = time.perf_counter()
        rid = request_id(request)
        check_auth(request.headers, config.api_keys)
        body = await _read_body(request, config.max_body_bytes, config.body_timeout)
        try:
            if len(body) > _PARSE_OFF_LOOP_BYTES:  # a big body would stall every other request while parsing
                req = await asyncio.to_thread(parse_screened, body)
            else:
                req = parse_screened(body)
        except ValidationError as exc:
            raise validation_problem(field_errors(exc)) from None
        except ScreenedOut as exc:
            raise validation_problem(exc.errors, exc.total) from None
        answer = await _unless_disconnected(request, service.embed(req))
        log.debug("request %s: %d inputs in %.1f ms", rid, len(answer["data"]), 1000 * (time.perf_counter() - started))
        headers = {"X-Request-ID": rid}
        if service.stopping:
            headers["Connection"] = "close"
        return VectorsResponse(answer, headers=headers)

    return app
