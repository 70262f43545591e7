"""API backend: the Jina Embeddings HTTP API (or a ``jinav3 serve`` server), sync and async.

It returns raw full-width vectors like every backend: it asks for ``normalized: false``, no ``dimensions`` and
base64 float32 (exact and compact); the :class:`jinav3.Embedder` then applies dimensions, normalisation and
encoding, identically for every backend (so ``jinav3 serve`` answers equal the local backend's bit for bit).

- Values are checked before any reaches the caller (:mod:`jinav3.backends.api_checks`): every vector finite, of the
  model's width and, where the caller wants normalised vectors, of a norm float32 normalisation turns into one
  (not zero, not vanishing, not overflowing); the reported usage a plausible whole number. A bad answer raises
  :class:`ApiAnswerError`, naming the server and the caller's row, and is not retried (a server that computed a
  NaN computes it again).

- One implementation: the async code. Sync calls run it on a private event loop thread, one request at a time;
  async calls run up to ``max_concurrency`` requests at once.
- Batching: at most ``max_batch_inputs`` inputs and ``max_batch_tokens`` tokens per request, in input order, so
  results do not depend on the batch size. Tokens are counted exactly with a local tokenizer when there is one,
  else estimated (:mod:`jinav3.backends.api_tokens`).
- Late chunking: the API treats all inputs of one request as consecutive chunks of ONE text (joined with a
  space). A request therefore carries the chunks of one document only, in document order whatever order the
  spans were listed in, with the document's separators where the join can carry them; a longer document is
  covered by overlapping requests placed at the local backend's macro windows, rounded to chunk boundaries; a
  window of more chunks than ``max_batch_inputs`` is sent as several requests that each carry the whole window,
  the chunks outside their share joined into context-only inputs, so every chunk gets exactly the window's vector;
  a request the server refuses as too long teaches the client the server's window and is planned again
  (:mod:`jinav3.backends.api_late`). No chunk is ever dropped.
- Time limits: ``timeout`` bounds each network operation (connect, every read or write); ``request_timeout``
  bounds one attempt from connecting to the last byte; ``retry_budget`` bounds the retries of one request, long
  enough by default to ride out a server restart (:mod:`jinav3.backends.api_retry`). A call returns one vector
  per input or raises.
- Secrets: the API key and any ``user:password@`` in ``base_url`` never appear in reprs, ``describe()``, logs
  or exception messages.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import numpy as np

from jinav3.backends.api_checks import first_bad_row, usage_problem
from jinav3.backends.api_late import (
    Part,
    Request,
    assemble,
    count_rejection,
    document_order,
    fitted_budget,
    kept_rows,
    length_rejection,
    plan_requests,
    sent_texts,
    shrunk,
    split_request,
)
from jinav3.backends.api_retry import (
    RETRY_STATUSES,
    GiveUp,
    RetryPolicy,
    RetryState,
    Transient,
    connection_failure,
    retry_after_seconds,
)
from jinav3.backends.api_tokens import TokenCounter, estimate_tokens, load_tokenizer
from jinav3.errors import BackendError, InvalidInputError
from jinav3.late_chunking.chunking import Span
from jinav3.runtime.progress import progress_bar
from jinav3.tasks import TASKS, validate_task
from jinav3.usage import TokenUsage

__all__ = ["DEFAULT_BASE_URL", "RETRY_STATUSES", "ApiAnswerError", "ApiBackend", "ApiError", "estimate_tokens"]

log = logging.getLogger("jinav3.api")

DEFAULT_BASE_URL = "https://api.jina.ai/v1"
_HINTS = {
    401: "check the API key (api_key=..., or JINA_API_KEY / JINAAI_API_KEY)",
    402: "the account needs credit",
    403: "the key lacks balance or permission for this request",
    404: "check base_url: it should end with /v1 (the client posts to {base_url}/embeddings)",
}
# Tokens a late-chunking request spends outside the chunks: <s>, </s> and the passage instruction, with margin.
_LATE_RESERVE = 32
T = TypeVar("T")


class ApiError(BackendError):
    """The API answered with an error (or kept failing): ``status`` (None for connection errors), the server's
    ``code``, ``detail`` and ``request_id``, and how many ``attempts`` were made."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, detail: str = "",
        request_id: str | None = None, attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.detail, self.request_id, self.attempts = status, code, detail, request_id, attempts


class ApiAnswerError(ApiError):
    """A 200 answer whose values are wrong (:mod:`jinav3.backends.api_checks`): ``server`` answered it, ``row`` is
    the caller's input (for late chunking the span's index in its document's list; None for the usage or a
    context-only input). Nothing of the answer was used."""

    def __init__(self, message: str, *, server: str, row: int | None) -> None:
        super().__init__(message, status=200)
        self.server, self.row = server, row


@dataclass(frozen=True)
class _Rows:
    """How the rows of one request are named to the caller: ``name(k)`` gives row ``k``'s label and the caller's
    index (None for a context-only input), ``request`` names the whole request; ``normalisable``: the caller wants
    normalised vectors, so a row normalisation cannot make a unit vector is refused."""

    name: Callable[[int], tuple[str, int | None]]
    request: str
    normalisable: bool


@dataclass(frozen=True)
class _LateDocument:
    """One document's late-chunking work: its ``index`` in the call, the chunk texts sent (document order) and their
    token counts, the caller's ``spans`` in document order and ``where`` each listed span sits among them, and the
    call's settings (``normalisable``: the caller normalises, as in :class:`_Rows`)."""

    index: int
    gate: asyncio.Semaphore
    chunks: list[str]
    counts: list[int]
    task: str | None
    usage: TokenUsage | None
    progress: Callable[[], None] | None
    ordered: list[Span]
    where: list[int]
    normalisable: bool

    def name(self, chunk: int | None) -> tuple[str, int | None]:
        """The label of ``chunk`` (document order) and its first row in the caller's list of spans; a context-only
        input (None) has no row."""
        if chunk is None:
            return f"a context-only input of a request for document {self.index}", None
        row = self.where.index(chunk)
        start, end = self.ordered[chunk]
        return f"document {self.index}, span {row} (characters {start}..{end})", row


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
    code = payload.get("code")
    request_id = payload.get("request_id")
    return (str(detail if detail is not None else payload)[:2000], code if isinstance(code, str) else None,
            request_id if isinstance(request_id, str) else None)


def _decode(payload: Any, count: int) -> list[np.ndarray]:
    """``count`` float32 vectors from a 200 body, in input order (widths checked later, row by row);
    ValueError/KeyError/TypeError when malformed."""
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
            rows[index] = np.asarray(value, dtype=np.float32).reshape(-1)
    return rows  # type: ignore[return-value]


def _safe_url(url: str) -> str:
    """``url`` without user:password, for describe() and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _secrets_of(url: str, api_key: str | None) -> list[str]:
    """Every form in which a credential could appear in a message (raw and percent-decoded)."""
    parts = urlsplit(url)
    found = [api_key or ""]
    for value in (parts.password, parts.username, parts.netloc.rpartition("@")[0]):
        if value:
            found += [value, unquote(value)]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


class _LoopThread:
    """A private event loop on a daemon thread, where sync calls run the async implementation."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jinav3-api", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result()
        except BaseException:  # KeyboardInterrupt included: stop the work too
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class ApiBackend:
    """Raw vectors from the Jina Embeddings API (or any server speaking its contract, e.g. ``jinav3 serve``).

    One reused ``httpx.AsyncClient`` per event loop in use (sync calls use a private one); close with
    :meth:`close` / :meth:`aclose` or use the ``Embedder`` as a context manager.
    """

    max_length = 8192
    tasks: tuple[str, ...] = TASKS

    def __init__(
        self,
        model: str = "jina-embeddings-v3",
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        request_timeout: float = 300.0,
        retry_budget: float = 300.0,
        max_retries: int = 5,
        max_concurrency: int = 4,
        max_batch_inputs: int = 2048,
        max_batch_tokens: int = 65_536,
        max_request_tokens: int = 8192,
        full_dimensions: int = 1024,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        tokenizer: Any = "auto",
    ) -> None:
        """``timeout`` seconds per network operation (connect, each read or write); ``request_timeout`` seconds
        per attempt in total, however the server trickles its answer; ``retry_budget`` seconds of retrying per
        request (a busy, unreachable or restarting server is retried until it is spent: 408/409/429/502/503/504 and
        refused or dropped connections); ``max_retries`` retries after errors (500, read timeouts, bad bodies);
        ``max_concurrency`` requests in flight for async calls; ``max_batch_inputs``/``max_batch_tokens`` per
        embedding request; ``max_request_tokens`` per late-chunking request; ``full_dimensions`` the model's width
        (1024 for jina-embeddings-v3; set it for a server running another checkpoint); ``backoff`` the first
        retry delay in seconds, doubling up to ``max_backoff``; ``tokenizer`` counts tokens exactly (a
        ``tokenizers.Tokenizer``, a tokenizer.json or model folder; ``"auto"``: jina-v3's tokenizer when it is in
        the local Hugging Face cache; None: estimate from characters)."""
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
        self._secrets = _secrets_of(self.base_url, self._api_key)
        numbers = {
            "timeout": timeout, "request_timeout": request_timeout, "retry_budget": retry_budget,
            "max_concurrency": max_concurrency, "max_batch_inputs": max_batch_inputs,
            "max_batch_tokens": max_batch_tokens, "full_dimensions": full_dimensions,
        }
        for name, value in numbers.items():
            if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise InvalidInputError(f"{name} must be a positive finite number, got {value!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        if not _LATE_RESERVE * 2 <= max_request_tokens <= self.max_length:
            raise InvalidInputError(f"max_request_tokens must be in [{_LATE_RESERVE * 2}, {self.max_length}]")
        self.model_name = model
        self.url = f"{self.base_url}/embeddings"
        self.timeout, self.request_timeout = float(timeout), float(request_timeout)
        self.max_concurrency = int(max_concurrency)
        self.max_batch_inputs, self.max_batch_tokens = int(max_batch_inputs), int(max_batch_tokens)
        self.max_request_tokens, self.full_dimensions = int(max_request_tokens), int(full_dimensions)
        self.policy = RetryPolicy(max_retries=max_retries, retry_budget=float(retry_budget), backoff=float(backoff),
                                  max_backoff=float(max_backoff))
        self.tokenizer = load_tokenizer(tokenizer, model)  # exact counts (and the token chunker) when set
        self._counter = TokenCounter(self.tokenizer)
        self._late_budget: int | None = None  # learnt from a server that refused a late-chunking request as too long
        self._input_limit: int | None = None  # learnt from a server that refused a request as holding too many inputs
        self.retries = 0  # retried requests so far (observability; also what the fault tests count)
        self._lock = threading.Lock()
        self._runner: _LoopThread | None = None
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    # -- compatibility views of the retry policy -----------------------------------------------------------
    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    @property
    def retry_budget(self) -> float:
        return self.policy.retry_budget

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
        """``text`` with the API key and URL credentials replaced by ``***``."""
        text = text.replace(self.base_url, _safe_url(self.base_url))
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _client(self) -> httpx.AsyncClient:
        """The AsyncClient of the running loop (an AsyncClient cannot move between event loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [old for old in self._clients if old.is_closed()]:
                del self._clients[old]
            limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
            client = self._clients[loop] = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), limits=limits)
        return client

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run async ``work`` to completion from sync code, on the private loop."""
        with self._lock:
            if self._runner is None:
                self._runner = _LoopThread()
            runner = self._runner
        return runner.run(work)

    def close(self) -> None:
        """Close the HTTP clients (an async one too, when its event loop is not running) and the private loop."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            client = self._clients.pop(runner.loop, None)
            if client is not None:
                runner.run(client.aclose())
            runner.stop()
        for loop, client in list(self._clients.items()):
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(client.aclose())
            self._clients.pop(loop, None)

    async def aclose(self) -> None:
        """Close the HTTP clients from async code."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        await asyncio.to_thread(self.close)

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

    def _checked(self, payload: dict, rows: list[np.ndarray], body: dict, names: _Rows) -> np.ndarray:
        """``rows`` stacked, once every value of the answer passed :mod:`jinav3.backends.api_checks`; else
        :class:`ApiAnswerError` naming the server and the row."""
        server = _safe_url(self.base_url)
        widths = {row.size for row in rows}
        if len(widths) == 1 and self.full_dimensions not in widths:  # a server of another model: say what to set
            width, (label, row) = widths.pop(), names.name(0)
            raise ApiAnswerError(f"{server} answered {width}-dimensional vectors (from {label}) but full_dimensions="
                                 f"{self.full_dimensions}; pass full_dimensions={width} for this server",
                                 server=server, row=row)
        bad = first_bad_row(rows, self.full_dimensions, normalisable=names.normalisable)
        if bad is not None:
            label, row = names.name(bad[0])
            raise ApiAnswerError(f"{server} answered {bad[1]} for {label}; the answer was refused", server=server,
                                 row=row)
        problem = usage_problem(payload.get("usage"), body["input"])
        if problem is not None:
            raise ApiAnswerError(f"{server} answered {problem} for {names.request}; the answer was refused",
                                 server=server, row=None)
        return np.stack(rows)

    def _vectors(self, response: httpx.Response, body: dict, usage: TokenUsage | None, names: _Rows) -> np.ndarray:
        """Checked vectors of a 200 answer (its reported tokens added to ``usage``); raises Transient (retry) or
        ApiError (give up at once)."""
        status = response.status_code
        if status == 200:
            try:
                payload = response.json()
                rows = _decode(payload, len(body["input"]))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise Transient(f"malformed response body ({exc})", status, kind="malformed body") from None
            vectors = self._checked(payload, rows, body, names)
            if usage is not None:
                reported = payload.get("usage")
                usage.add(reported.get("total_tokens") if isinstance(reported, dict) else None)
            return vectors
        detail, code, request_id = _error_fields(response)
        detail = self._scrub(detail)
        if status in RETRY_STATUSES:
            raise Transient(f"HTTP {status} {code or ''}: {detail}".strip(), status, retry_after_seconds(response))
        hint = _HINTS.get(status)
        message = f"embeddings API answered HTTP {status}{f' {code}' if code else ''}: {detail}"
        if request_id:
            message += f" [request_id {request_id}]"
        raise ApiError(message + (f" ({hint})" if hint else ""), status=status, code=code, detail=detail,
                       request_id=request_id)

    async def _attempt(self, body: dict, usage: TokenUsage | None, names: _Rows) -> np.ndarray:
        """One HTTP attempt, bounded in total by ``request_timeout``."""
        try:
            response = await asyncio.wait_for(
                self._client().post(self.url, json=body, headers=self._headers()), self.request_timeout
            )
        except asyncio.TimeoutError:
            raise Transient(f"no complete answer within request_timeout={self.request_timeout:g} s",
                            kind="request_timeout") from None
        except httpx.RequestError as exc:
            raise Transient(self._scrub(f"{type(exc).__name__}: {exc}"), unavailable=connection_failure(exc),
                            kind=type(exc).__name__) from None
        return self._vectors(response, body, usage, names)

    async def _send(self, body: dict, usage: TokenUsage | None, names: _Rows) -> np.ndarray:
        """Vectors for one request body, retried as :mod:`jinav3.backends.api_retry` says."""
        state = RetryState(self.policy)
        while True:
            state.attempts += 1
            try:
                return await self._attempt(body, usage, names)
            except Transient as failure:
                try:
                    delay = state.delay(failure)
                except GiveUp as stop:
                    raise ApiError(
                        f"embeddings request to {_safe_url(self.url)} failed after {state.attempts} attempts in "
                        f"{state.elapsed:.1f} s ({stop.reason}; failures: {state.summary()}); last error: {failure}",
                        status=failure.status, detail=str(failure), attempts=state.attempts,
                    ) from None
                with self._lock:
                    self.retries += 1
                log.warning("embeddings request failed (%s); retry %d in %.2fs", failure, state.attempts, delay)
            await asyncio.sleep(delay)

    async def _gated(self, gate: asyncio.Semaphore, body: dict, usage: TokenUsage | None, names: _Rows) -> np.ndarray:
        async with gate:
            return await self._send(body, usage, names)

    @staticmethod
    async def _in_order(jobs: Sequence[Awaitable[T]]) -> list[T]:
        """Await all ``jobs`` (already gated), results in order; the first failure cancels the rest."""
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    # -- plain embeddings --------------------------------------------------------------------------------
    def _max_inputs(self) -> int:
        """Inputs per request: ``max_batch_inputs``, or less once a server has said it takes fewer."""
        learnt = self._input_limit
        return self.max_batch_inputs if learnt is None else min(learnt, self.max_batch_inputs)

    def _learn_input_limit(self, exc: ApiError, sent: int) -> None:
        """Learn the server's input limit (:meth:`_max_inputs` then keeps to it) from ``exc``, which refused a
        request of ``sent`` inputs; re-raise ``exc`` when it was refused for another reason, or was a single input."""
        limit = count_rejection(exc.status, exc.code, exc.detail, sent)
        if limit is None or sent <= 1:
            raise exc
        with self._lock:
            self._input_limit = min(self._input_limit or limit, limit)
        log.info("request of %d inputs refused as too many; sending at most %d inputs per request", sent, limit)

    def _batches(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """Consecutive ``[start, end)`` ranges within the input-count and token limits."""
        batches: list[tuple[int, int]] = []
        start, tokens = 0, 0
        max_inputs = self._max_inputs()
        for i, count in enumerate(self._counter.count(texts)):
            if i > start and (i - start >= max_inputs or tokens + count > self.max_batch_tokens):
                batches.append((start, i))
                start, tokens = i, 0
            tokens += count
        if start < len(texts):
            batches.append((start, len(texts)))
        return batches

    async def _embed(self, texts: Sequence[str], task: str | None, truncate: bool, normalized: bool, concurrency: int,
                     usage: TokenUsage | None, progress: Callable[[], None] | None = None) -> np.ndarray:
        validate_task(task)
        gate = asyncio.Semaphore(concurrency)

        async def one(a: int, b: int) -> np.ndarray:
            body = self._body(texts[a:b], task, truncate=truncate, late_chunking=False)
            names = _Rows(lambda k: (f"input {a + k}", a + k), f"inputs {a}..{b - 1}", normalized)
            try:
                vectors = await self._gated(gate, body, usage, names)
            except ApiError as exc:
                self._learn_input_limit(exc, b - a)
                step = self._max_inputs()
                return np.concatenate(await self._in_order([one(x, min(x + step, b)) for x in range(a, b, step)]))
            if progress is not None:
                progress()
            return vectors

        parts = await self._in_order([one(a, b) for a, b in self._batches(texts)])
        return np.concatenate(parts) if parts else np.zeros((0, self.full_dimensions), np.float32)

    def embed(
        self, texts: Sequence[str], task: str | None, *, truncate: bool = False, show_progress: bool | None = False,
        usage: TokenUsage | None = None, normalized: bool = False,
    ) -> np.ndarray:
        """One raw vector per text; ``normalized``: the caller normalises them, so a vector float32 normalisation
        cannot turn into a unit one is refused."""
        with progress_bar(show_progress, desc="embedding", unit="request") as bar:
            return self._run(self._embed(texts, task, truncate, normalized, 1, usage, lambda: bar.update(1)))

    async def aembed(self, texts: Sequence[str], task: str | None, *, truncate: bool = False,
                     usage: TokenUsage | None = None, normalized: bool = False) -> np.ndarray:
        return await self._embed(texts, task, truncate, normalized, self.max_concurrency, usage)

    # -- late chunking -----------------------------------------------------------------------------------
    def _late_limits(self, include_special_tokens: bool, window: int | None, overlap: int | None) -> tuple[int, int]:
        """``(budget, overlap)`` in tokens of chunks: per request, and shared by neighbouring requests."""
        if not include_special_tokens:
            raise InvalidInputError(
                "the API always pools <s> and the instruction into the first chunk and </s> into the last; "
                "include_special_tokens=False needs the local backend"
            )
        budget = window or self.max_request_tokens
        if not _LATE_RESERVE * 2 <= budget <= self.max_length:
            raise InvalidInputError(f"window must be between {_LATE_RESERVE * 2} and {self.max_length} for the "
                                    f"API backend (tokens per request), got {budget}")
        budget -= _LATE_RESERVE
        shared = min(512, budget // 4) if overlap is None else overlap  # the local backend's default rule
        if not 0 <= shared < budget:
            raise InvalidInputError(f"overlap must be in [0, {budget}) tokens, got {shared}")
        learnt = self._late_budget
        if learnt is not None and learnt < budget:
            budget, shared = learnt, min(shared, learnt // 4)
        return budget, shared

    def _planning_inputs(self, chunks: int) -> int:
        """The input limit requests are planned within: none while the server takes 3 inputs or more (a window of
        more chunks is split into requests with context-only inputs, :func:`split_request`), else the server's."""
        limit = self._max_inputs()
        return limit if limit < 3 else max(chunks, 1)

    async def _late_part(self, doc: _LateDocument, part: Part) -> np.ndarray | None:
        """The vectors of the chunks ``part`` sends on their own; None when the server refused it as holding too
        many inputs (its limit is then learnt and the request split again)."""
        inputs = part.inputs(doc.chunks)
        body = self._body(inputs, doc.task, truncate=False, late_chunking=True)
        names = _Rows(lambda k: doc.name(part.chunk_of(k)),
                      f"a late-chunking request for document {doc.index} (chunks {part.a}..{part.b - 1})",
                      doc.normalisable)
        try:
            vectors = await self._gated(doc.gate, body, doc.usage, names)
        except ApiError as exc:
            if length_rejection(exc.status, exc.code, exc.detail) is not None:
                raise
            self._learn_input_limit(exc, len(inputs))  # re-raises any other refusal
            return None
        if doc.progress is not None:
            doc.progress()
        return part.rows(vectors)

    async def _late_request(self, doc: _LateDocument, plan: Request, budget: int, overlap: int) -> np.ndarray:
        """Vectors of the chunks ``plan`` keeps (weighted), in as many requests as the server's input limit needs,
        each carrying the whole window; on a "too many tokens" refusal the server's window is learnt (exactly
        where the counts allow) and those chunks are planned again within it."""
        start, end = plan.start, plan.end
        if end - start > self._max_inputs() and self._max_inputs() < 3:  # no room for context-only inputs
            return await self._late_replanned(doc, plan, budget, overlap)
        parts = split_request(plan, self._max_inputs())
        try:
            rows = await self._in_order([self._late_part(doc, part) for part in parts])
        except ApiError as exc:
            factor = length_rejection(exc.status, exc.code, exc.detail)
            if factor is None:
                raise
            sent = sum(doc.counts[start:end])
            if end - start == 1:
                raise ApiError(
                    f"the server refused chunk {start} of a document on its own as too long for one late-chunking "
                    f"request ({exc.detail}); use smaller chunks (e.g. chunk_size), or lower max_request_tokens/window "
                    "if chunks are packed too tightly", status=exc.status, code=exc.code, detail=exc.detail,
                    request_id=exc.request_id, attempts=exc.attempts,
                ) from None
            smaller, overlap = shrunk(budget, overlap, sent, factor)
            fits = fitted_budget(exc.detail, sent, self._counter.specials()) if self._counter.exact else None
            with self._lock:  # an exact fit (the server's window) where the counts allow it, else 90 % of a guess
                self._late_budget = smaller = min(self._late_budget or fits or smaller, fits or smaller)
            overlap = min(overlap, smaller // 4)
            log.info("late-chunking request of %d tokens refused as too long; re-planning with %d-token requests",
                     sent, smaller)
            return await self._late_replanned(doc, plan, smaller, overlap)
        if any(row is None for row in rows):  # a part held more inputs than the server takes: split again
            return await self._late_request(doc, plan, budget, overlap)
        return kept_rows(plan, parts, rows)  # type: ignore[arg-type]

    async def _late_replanned(self, doc: _LateDocument, plan: Request, budget: int, overlap: int) -> np.ndarray:
        """The chunks ``plan`` keeps (weighted as it weighs them), planned again within smaller limits (``budget``,
        the learnt input limit: the whole document's plan kept to those chunks) after the server refused ``plan``."""
        inputs = self._planning_inputs(len(doc.counts))
        subs = plan_requests(doc.counts, budget, overlap, inputs, plan.keep_start, plan.keep_end)
        parts = await self._in_order([self._late_request(doc, sub, budget, overlap) for sub in subs])
        return plan.weigh(assemble(subs, parts, plan.keep_start, plan.keep_end))

    async def _late(self, documents: Sequence[str], spans: Sequence[Sequence[Span]], task: str | None,
                    include_special_tokens: bool, window: int | None, overlap: int | None, normalized: bool,
                    concurrency: int, usage: TokenUsage | None,
                    progress: Callable[[], None] | None = None) -> list[np.ndarray]:
        validate_task(task)
        budget, shared = self._late_limits(include_special_tokens, window, overlap)
        if len(documents) != len(spans):
            raise InvalidInputError(f"{len(documents)} documents but {len(spans)} span lists")
        gate = asyncio.Semaphore(concurrency)

        async def document(index: int, text: str, doc_spans: Sequence[Span]) -> np.ndarray:
            ordered, where = document_order([(int(s), int(e)) for s, e in doc_spans])
            chunks = sent_texts(text, ordered)
            counts = self._counter.count(chunks, special_tokens=False)
            doc = _LateDocument(index, gate, chunks, counts, task, usage, progress, ordered, where, normalized)
            plans = plan_requests(counts, budget, shared, self._planning_inputs(len(counts)))
            parts = await self._in_order([self._late_request(doc, plan, budget, shared) for plan in plans])
            if not parts:
                return np.zeros((0, self.full_dimensions), np.float32)
            return assemble(plans, parts, 0, len(chunks))[where]

        return await self._in_order([document(i, *pair) for i, pair in enumerate(zip(documents, spans, strict=True))])

    def late_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool | None = False,
        usage: TokenUsage | None = None,
        normalized: bool = False,
    ) -> list[np.ndarray]:
        """One raw contextual vector per span, per document. ``window`` is the token budget of one request
        (default ``max_request_tokens``, or the server's own window once it has refused a longer request),
        ``overlap`` the tokens of chunks neighbouring requests share (default, as for the local backend,
        ``min(512, window // 4)``); requests sit where the local macro windows do and hand over where they do.
        ``normalized``: as for :meth:`embed`."""
        with progress_bar(show_progress, desc="late chunking", unit="request") as bar:
            return self._run(self._late(documents, spans, task, include_special_tokens, window, overlap, normalized, 1,
                                        usage, lambda: bar.update(1)))

    async def alate_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        usage: TokenUsage | None = None,
        normalized: bool = False,
    ) -> list[np.ndarray]:
        return await self._late(documents, spans, task, include_special_tokens, window, overlap, normalized,
                                self.max_concurrency, usage)

