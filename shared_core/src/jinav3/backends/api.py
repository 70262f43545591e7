"""API backend: the Jina Embeddings HTTP API (or a ``jinav3 serve`` server), sync and async.

It returns raw full-width vectors like every backend: it asks for ``normalized: false``, no ``dimensions`` and
base64 float32 (exact and compact); the :class:`jinav3.Embedder` then applies dimensions, normalisation and
encoding, identically for every backend.

- Batching: at most ``max_batch_inputs`` inputs and ``max_batch_tokens`` estimated tokens per request, in input
  order, so results do not depend on the batch size.
- Late chunking: the API treats all inputs of one request as consecutive chunks of ONE text (joined with a
  space, at most 8192 tokens). A request therefore carries the chunks of one document only; a longer document
  is spread over several requests, each led by preceding chunks as context whose vectors are discarded.
- Tokens are estimated from characters (there is no tokenizer client-side), conservatively: see
  :func:`estimate_tokens`.
- Retries with exponential backoff and jitter on 409/429/5xx, connection errors, timeouts and malformed
  bodies, honouring ``Retry-After``; never on other 4xx. A call returns one vector per input or raises.
- The API key comes from ``api_key``, ``JINA_API_KEY`` or ``JINAAI_API_KEY`` and never appears in reprs,
  ``describe()``, logs or exception messages.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
from tqdm.auto import tqdm

from jinav3.chunking import Span
from jinav3.errors import BackendError, InvalidInputError
from jinav3.tasks import TASKS, validate_task

log = logging.getLogger("jinav3.api")

DEFAULT_BASE_URL = "https://api.jina.ai/v1"
#: Statuses worth retrying: busy (409), rate limited (429), server-side failures (500, 502, 503, 504).
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
_HINTS = {
    401: "check the API key (api_key=..., or JINA_API_KEY / JINAAI_API_KEY)",
    402: "the account needs credit",
    403: "the key lacks balance or permission for this request",
    404: "check base_url: it should end with /v1 (the client posts to {base_url}/embeddings)",
}
# Tokens a late-chunking request spends outside the chunks: <s>, </s> and the passage instruction, with margin.
_LATE_RESERVE = 32
_CJK = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef]")
_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")
T = TypeVar("T")


def estimate_tokens(text: str) -> int:
    """An upper estimate of the XLM-R tokens of ``text``, from characters only.

    CJK and Hangul characters count one token each; each run of letters one token per 3 characters (real text
    averages 4 or more); digit runs one per 2 digits; every punctuation mark or symbol one; plus 10 %.
    """
    rest, cjk = _CJK.subn(" ", text)
    tokens = cjk
    for piece in _PIECES.finditer(rest):
        word = piece.group()
        tokens += math.ceil(len(word) / 2) if word[0].isdigit() else math.ceil(len(word) / 3)
    return math.ceil(tokens * 1.1) + 1


class ApiError(BackendError):
    """The API answered with an error (or kept failing): ``status`` (None for connection errors), the server's
    ``code``, ``detail`` and ``request_id``, and how many ``attempts`` were made."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, detail: str = "",
        request_id: str | None = None, attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.detail, self.request_id, self.attempts = status, code, detail, request_id, attempts


class _Transient(Exception):
    """A failure worth retrying, with the server's ``Retry-After`` (seconds) when it sent one."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_fields(response: httpx.Response) -> tuple[str, str | None, str | None]:
    """``(detail, code, request_id)`` of an error answer, parsed defensively (Jina has used several shapes)."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase, None, None
    if not isinstance(payload, dict):
        return str(payload)[:500], None, None
    detail = payload.get("detail")
    if detail is None and isinstance(payload.get("error"), dict):
        detail = payload["error"].get("message")
    if isinstance(payload.get("errors"), list) and payload["errors"]:
        fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in payload["errors"] if isinstance(e, dict))
        detail = f"{detail} ({fields})" if detail else fields
    return str(detail if detail is not None else payload)[:2000], payload.get("code"), payload.get("request_id")


def _decode(payload: Any, count: int) -> np.ndarray:
    """``(count, width)`` float32 vectors from a 200 body; ValueError/KeyError/TypeError when malformed."""
    data = payload["data"]
    if not isinstance(data, list) or len(data) != count:
        raise ValueError(f"expected {count} embeddings, got {len(data) if isinstance(data, list) else type(data)}")
    rows: list[np.ndarray | None] = [None] * count
    for item in data:
        index, value = item["index"], item["embedding"]
        if not isinstance(index, int) or not 0 <= index < count or rows[index] is not None:
            raise ValueError(f"bad or repeated index {index!r}")
        if isinstance(value, str):
            rows[index] = np.frombuffer(base64.b64decode(value, validate=True), dtype="<f4")
        else:
            rows[index] = np.asarray(value, dtype=np.float32)
    widths = {len(r) for r in rows if r is not None}
    if len(widths) != 1:
        raise ValueError(f"embeddings of different widths {sorted(widths)}")
    return np.stack(rows).astype(np.float32)  # type: ignore[arg-type]


def _late_plan(estimates: Sequence[int], budget: int, context: int) -> list[tuple[int, int, int]]:
    """Split one document's chunks into requests ``(context_start, first_new, end)``: chunks
    ``[context_start, end)`` are sent, vectors of ``[first_new, end)`` kept. Each request stays within
    ``budget`` estimated tokens (a single oversized chunk goes alone) and is led by up to ``context`` tokens of
    the chunks before it."""
    plans: list[tuple[int, int, int]] = []
    first, count = 0, len(estimates)
    while first < count:
        room = min(context, max(0, budget - estimates[first]))
        start, used = first, 0
        while start > 0 and used + estimates[start - 1] <= room:
            start -= 1
            used += estimates[start]
        end, total = first, used
        while end < count and (end == first or total + estimates[end] <= budget):
            total += estimates[end]
            end += 1
        plans.append((start, first, end))
        first = end
    return plans


def _safe_url(url: str) -> str:
    """``url`` without user:password, for describe() and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class ApiBackend:
    """Raw vectors from the Jina Embeddings API (or any server speaking its contract, e.g. ``jinav3 serve``).

    One reused ``httpx.Client`` (and one ``httpx.AsyncClient`` per event loop) per backend; close with
    :meth:`close` / :meth:`aclose` or use the ``Embedder`` as a context manager.
    """

    tokenizer = None  # no tokenizer client-side: the token chunker needs the local backend
    max_length = 8192
    tasks: tuple[str, ...] = TASKS

    def __init__(
        self,
        model: str = "jina-embeddings-v3",
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_concurrency: int = 4,
        max_batch_inputs: int = 2048,
        max_batch_tokens: int = 65_536,
        max_request_tokens: int = 8192,
        full_dimensions: int = 1024,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        """``timeout`` seconds per request; ``max_retries`` extra attempts per request; ``max_concurrency``
        requests in flight for async calls; ``max_batch_inputs``/``max_batch_tokens`` (estimated) per embedding
        request; ``max_request_tokens`` (estimated) per late-chunking request; ``full_dimensions`` the model's
        width (1024 for jina-embeddings-v3; set it for a server running another checkpoint); ``backoff`` the
        first retry delay in seconds, doubling up to ``max_backoff``."""
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"base_url must start with http:// or https://, got {_safe_url(self.base_url)!r}")
        key = api_key or os.environ.get("JINA_API_KEY") or os.environ.get("JINAAI_API_KEY") or None
        if key is not None and (not isinstance(key, str) or not key.strip() or any(c in key for c in "\r\n")):
            raise InvalidInputError("the API key must be a non-empty single-line string")
        if key is None and self.base_url == DEFAULT_BASE_URL:
            raise InvalidInputError(
                "no Jina API key: pass api_key=... or set JINA_API_KEY (get one at https://jina.ai/api-dashboard)"
            )
        self._api_key = key.strip() if key else None
        numbers = {
            "timeout": timeout, "max_concurrency": max_concurrency, "max_batch_inputs": max_batch_inputs,
            "max_batch_tokens": max_batch_tokens, "full_dimensions": full_dimensions,
        }
        for name, value in numbers.items():
            if not value > 0:
                raise InvalidInputError(f"{name} must be positive, got {value!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        if not _LATE_RESERVE * 2 <= max_request_tokens <= self.max_length:
            raise InvalidInputError(f"max_request_tokens must be in [{_LATE_RESERVE * 2}, {self.max_length}]")
        self.model_name = model
        self.url = f"{self.base_url}/embeddings"
        self.timeout, self.max_retries, self.max_concurrency = float(timeout), max_retries, int(max_concurrency)
        self.max_batch_inputs, self.max_batch_tokens = int(max_batch_inputs), int(max_batch_tokens)
        self.max_request_tokens, self.full_dimensions = int(max_request_tokens), int(full_dimensions)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.retries = 0  # retried requests so far (observability; also what the fault tests count)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    # -- plumbing ----------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"ApiBackend(model={self.model_name!r}, base_url={_safe_url(self.base_url)!r}, api_key=<{key}>)"

    def describe(self) -> dict[str, Any]:
        return {"backend": "api", "model": self.model_name, "base_url": _safe_url(self.base_url)}

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout))
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        """The AsyncClient of the running loop (an AsyncClient cannot move between event loops)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
            self._aclient = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), limits=limits)
            self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        """Close the HTTP clients (the async one too, when its event loop is not running)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        aclient, loop = self._aclient, self._aclient_loop
        if aclient is not None and loop is not None and not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(aclient.aclose())
        self._aclient = self._aclient_loop = None

    async def aclose(self) -> None:
        """Close the HTTP clients from async code."""
        aclient, self._aclient, self._aclient_loop = self._aclient, None, None
        if aclient is not None:
            await aclient.aclose()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- one request, with retries -----------------------------------------------------------------------
    def _body(self, inputs: Sequence[str], task: str | None, *, truncate: bool, late_chunking: bool) -> dict:
        body: dict[str, Any] = {
            "model": self.model_name, "input": list(inputs), "embedding_type": "base64", "normalized": False,
        }
        if task is not None:
            body["task"] = task
        if truncate:
            body["truncate"] = True
        if late_chunking:
            body["late_chunking"] = True
        return body

    def _vectors(self, response: httpx.Response, count: int) -> np.ndarray:
        """Vectors of a 200 answer; raises _Transient (retry) or ApiError (give up at once)."""
        status = response.status_code
        if status == 200:
            try:
                vectors = _decode(response.json(), count)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise _Transient(f"malformed response body ({exc})", status) from None
            if vectors.shape[1] != self.full_dimensions:
                raise ApiError(
                    f"{self.url} returned {vectors.shape[1]}-dimensional vectors but full_dimensions="
                    f"{self.full_dimensions}; pass full_dimensions={vectors.shape[1]} for this server",
                    status=status,
                )
            return vectors
        detail, code, request_id = _error_fields(response)
        detail = self._scrub(detail)
        if status in RETRY_STATUSES:
            raise _Transient(f"HTTP {status} {code or ''}: {detail}".strip(), status, _retry_after(response))
        hint = _HINTS.get(status)
        message = f"embeddings API answered HTTP {status}{f' {code}' if code else ''}: {detail}"
        if request_id:
            message += f" [request_id {request_id}]"
        raise ApiError(message + (f" ({hint})" if hint else ""), status=status, code=code, detail=detail,
                       request_id=request_id)

    def _next_delay(self, attempt: int, failure: _Transient) -> float:
        """Seconds to wait before retrying after ``failure``, or ApiError when the retries are used up."""
        if attempt >= self.max_retries:
            raise ApiError(
                f"embeddings request to {_safe_url(self.url)} failed after {attempt + 1} attempts; last error: "
                f"{failure}", status=failure.status, detail=str(failure), attempts=attempt + 1,
            ) from failure
        if failure.retry_after is not None:
            delay = min(failure.retry_after, 600.0)
        else:
            cap = min(self.max_backoff, self.backoff * 2**attempt)
            delay = cap / 2 + random.uniform(0, cap / 2)
        with self._lock:
            self.retries += 1
        log.warning("embeddings request failed (%s); retry %d/%d in %.2fs", failure, attempt + 1, self.max_retries,
                    delay)
        return delay

    @staticmethod
    def _transient(exc: httpx.RequestError) -> _Transient:
        return _Transient(f"{type(exc).__name__}: {exc}")

    def _send(self, body: dict, count: int) -> np.ndarray:
        client = self._sync_client()
        for attempt in range(self.max_retries + 1):
            try:
                return self._vectors(client.post(self.url, json=body, headers=self._headers()), count)
            except _Transient as failure:
                delay = self._next_delay(attempt, failure)
            except httpx.RequestError as exc:
                delay = self._next_delay(attempt, self._transient(exc))
            time.sleep(delay)
        raise AssertionError("unreachable")

    async def _asend(self, body: dict, count: int) -> np.ndarray:
        client = self._async_client()
        for attempt in range(self.max_retries + 1):
            try:
                return self._vectors(await client.post(self.url, json=body, headers=self._headers()), count)
            except _Transient as failure:
                delay = self._next_delay(attempt, failure)
            except httpx.RequestError as exc:
                delay = self._next_delay(attempt, self._transient(exc))
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _bounded(self, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run ``jobs`` concurrently, at most ``max_concurrency`` at a time, results in order."""
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(job: Callable[[], Awaitable[T]]) -> T:
            async with gate:
                return await job()

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    # -- plain embeddings --------------------------------------------------------------------------------
    def _batches(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """Consecutive ``[start, end)`` ranges within the input-count and estimated-token limits."""
        batches: list[tuple[int, int]] = []
        start, tokens = 0, 0
        for i, text in enumerate(texts):
            estimate = estimate_tokens(text)
            if i > start and (i - start >= self.max_batch_inputs or tokens + estimate > self.max_batch_tokens):
                batches.append((start, i))
                start, tokens = i, 0
            tokens += estimate
        if start < len(texts):
            batches.append((start, len(texts)))
        return batches

    def embed(
        self, texts: Sequence[str], task: str | None, *, truncate: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        validate_task(task)
        parts = [
            self._send(self._body(texts[a:b], task, truncate=truncate, late_chunking=False), b - a)
            for a, b in tqdm(self._batches(texts), desc="embedding", unit="request", disable=not show_progress)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.full_dimensions), np.float32)

    async def aembed(self, texts: Sequence[str], task: str | None, *, truncate: bool = False) -> np.ndarray:
        validate_task(task)
        bodies = [(self._body(texts[a:b], task, truncate=truncate, late_chunking=False), b - a)
                  for a, b in self._batches(texts)]
        parts = await self._bounded([lambda body=body, n=n: self._asend(body, n) for body, n in bodies])
        return np.concatenate(parts) if parts else np.zeros((0, self.full_dimensions), np.float32)

    # -- late chunking -----------------------------------------------------------------------------------
    def _late_requests(
        self, documents: Sequence[str], spans: Sequence[Sequence[Span]], task: str | None,
        include_special_tokens: bool, window: int | None, overlap: int | None,
    ) -> list[tuple[int, int, dict, int]]:
        """Every request of every document: ``(document index, vectors to skip, body, input count)``."""
        validate_task(task)
        if not include_special_tokens:
            raise InvalidInputError(
                "the API always pools <s> and the instruction into the first chunk and </s> into the last; "
                "include_special_tokens=False needs the local backend"
            )
        budget = window or self.max_request_tokens
        if not _LATE_RESERVE * 2 <= budget <= self.max_length:
            raise InvalidInputError(f"window must be between {_LATE_RESERVE * 2} and {self.max_length} for the "
                                    f"API backend (estimated tokens per request), got {budget}")
        budget -= _LATE_RESERVE
        context = budget // 4 if overlap is None else overlap
        if not 0 <= context < budget:
            raise InvalidInputError(f"overlap must be in [0, {budget}) estimated tokens, got {context}")
        requests: list[tuple[int, int, dict, int]] = []
        for d, (document, doc_spans) in enumerate(zip(documents, spans, strict=True)):
            chunks = [document[s:e] for s, e in doc_spans]
            for start, first, end in _late_plan([estimate_tokens(c) for c in chunks], budget, context):
                body = self._body(chunks[start:end], task, truncate=False, late_chunking=True)
                requests.append((d, first - start, body, end - start))
        return requests

    @staticmethod
    def _assemble(count: int, requests: Sequence[tuple[int, int, dict, int]], outputs: Sequence[np.ndarray]) -> list:
        per_doc: list[list[np.ndarray]] = [[] for _ in range(count)]
        for (d, skip, _, _), vectors in zip(requests, outputs, strict=True):
            per_doc[d].append(vectors[skip:])
        return [np.concatenate(parts) for parts in per_doc]

    def late_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool = False,
    ) -> list[np.ndarray]:
        """One raw contextual vector per span, per document. ``window`` is the estimated-token budget of one
        request (default ``max_request_tokens``), ``overlap`` the context carried into the next request
        (default a quarter of it)."""
        requests = self._late_requests(documents, spans, task, include_special_tokens, window, overlap)
        outputs = [
            self._send(body, n)
            for _, _, body, n in tqdm(requests, desc="late chunking", unit="request", disable=not show_progress)
        ]
        return self._assemble(len(documents), requests, outputs)

    async def alate_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
    ) -> list[np.ndarray]:
        requests = self._late_requests(documents, spans, task, include_special_tokens, window, overlap)
        outputs = await self._bounded([lambda body=body, n=n: self._asend(body, n) for _, _, body, n in requests])
        return self._assemble(len(documents), requests, outputs)
