"""``GET /metrics``: what an operator scrapes, in Prometheus text format (``prometheus_client``).

Each app has its own registry (several servers can share a process, as in the tests). Requests are counted by
route and status by :class:`MetricsMiddleware`, which sees every answer, the guards' and the connection guards'
refusals included; refusals are also counted by reason (the error ``code``, lower case). The micro-batcher reports
each sub-round (inputs, tokens, seconds) and each answered job (seconds queued before its first sub-round, seconds
from then to its last) through :class:`ServerMetrics`; queue depth and queued tokens are read when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jinav3.server.errors import REFUSAL_KEY

Scope = MutableMapping[str, Any]
ROUTES = frozenset({"/v1/embeddings", "/v1/models", "/health", "/metrics", "/docs", "/openapi.json", "/redoc"})
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


class ServerMetrics:
    """The server's metrics on a registry of its own; ``render()`` is the scrape answer."""

    def __init__(self, queue_inputs: Callable[[], float], queue_tokens: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("jinav3_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=r)
        self.refusals = Counter("jinav3_refusals", "Requests refused, by reason (the error code)", ["reason"],
                                registry=r)
        self.inputs = Counter("jinav3_inputs", "Inputs embedded (answered with 200)", registry=r)
        self.tokens = Counter("jinav3_tokens", "Tokens embedded (answered with 200)", registry=r)
        Gauge("jinav3_queue_inputs", "Inputs waiting or being computed", registry=r).set_function(queue_inputs)
        Gauge("jinav3_queue_tokens", "Tokens waiting or being computed", registry=r).set_function(queue_tokens)
        self.batch_inputs = Histogram("jinav3_batch_inputs", "Inputs (rows or documents) per sub-round",
                                      buckets=_SIZES, registry=r)
        self.batch_tokens = Histogram("jinav3_batch_tokens", "Tokens per sub-round", buckets=_SIZES, registry=r)
        self.batch_seconds = Histogram("jinav3_batch_seconds", "Seconds of compute per sub-round", buckets=_SECONDS,
                                       registry=r)
        self.queue_wait = Histogram("jinav3_queue_wait_seconds", "Seconds a job waited before its first sub-round",
                                    buckets=_SECONDS, registry=r)
        self.compute = Histogram("jinav3_compute_seconds", "Seconds from a job's first sub-round to its answer",
                                 buckets=_SECONDS, registry=r)
        self.latency = Histogram("jinav3_request_seconds", "Seconds from a request's arrival to its answer, by route",
                                 ["route"], buckets=_SECONDS, registry=r)

    def sub_round(self, inputs: int, tokens: int, seconds: float) -> None:
        self.batch_inputs.observe(inputs)
        self.batch_tokens.observe(tokens)
        self.batch_seconds.observe(seconds)

    def job_done(self, queue_wait: float, compute: float) -> None:
        self.queue_wait.observe(queue_wait)
        self.compute.observe(compute)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason.lower()).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every HTTP answer by route (unknown paths as ``other``: bounded label values) and status, times it,
    and counts refusals by the reason an error answer left in the scope."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            code = status[0] or 499  # nothing was sent: the client went away
            self.metrics.requests.labels(route, str(code)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            reason = scope.get(REFUSAL_KEY)
            if reason and code >= 400:
                self.metrics.refused(reason)
