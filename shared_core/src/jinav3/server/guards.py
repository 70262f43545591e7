"""Browser-safe defaults: what a web page the user visits must not be able to do with a local server.

A page can POST ``text/plain`` (or a form) to any address without a CORS preflight, so ``POST`` routes require
``Content-Type: application/json`` (415 otherwise): a browser sends that type cross-origin only after a preflight,
which this server never approves. DNS rebinding lets a page on ``evil.example`` reach ``127.0.0.1`` under its own
name and read the answers, so the ``Host`` header must name this server: by default only loopback names
(``localhost``, ``127.0.0.1``, ``::1``), configurable with ``allowed_hosts`` (``"*"`` allows any; ``jinav3
serve`` allows any on a non-loopback bind unless ``--allowed-host`` is given). The generated docs
(``/docs``, ``/redoc``, ``/openapi.json``) need the key when one is set. Checks run as ASGI middleware, before
any route reads the body.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request

from jinav3.server.errors import ApiProblem, problem_response

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def check_auth(headers: Headers, keys: tuple[str, ...]) -> None:
    """Nothing when no key is configured or ``Authorization: Bearer <key>`` names one; else a 401."""
    if not keys:
        return
    header = headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiProblem(401, "AUTH_MISSING_API_KEY", "Missing API key: send 'Authorization: Bearer <key>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "AUTH_INVALID_FORMAT", "Malformed Authorization header: use 'Bearer <key>'")
    if not any(hmac.compare_digest(token.strip().encode(), key.encode()) for key in keys):
        raise ApiProblem(401, "AUTH_INVALID_API_KEY", "Invalid API key")


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port and IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def check_host(headers: Headers, allowed: tuple[str, ...]) -> None:
    """A 400 unless the ``Host`` header names an allowed host (a request without one is not from a browser)."""
    if "*" in allowed or "host" not in headers:
        return
    name = host_name(headers["host"])
    if name not in {host.lower().strip("[]") for host in allowed}:
        raise ApiProblem(400, "INVALID_HOST", f"Host {name[:100]!r} is not a name of this server; allowed: "
                         f"{', '.join(allowed)} (set them with --allowed-host)")


def check_json(headers: Headers) -> None:
    """A 415 unless the body is declared ``application/json`` (what a page cannot send without a preflight)."""
    kind = headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiProblem(415, "UNSUPPORTED_MEDIA_TYPE",
                         f"Content-Type must be application/json, got {kind[:100] or 'none'!r}")


class BrowserGuard:
    """ASGI middleware applying :func:`check_host`, :func:`check_json` (POST) and the key on the docs pages."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...], api_keys: tuple[str, ...]) -> None:
        self.app, self.allowed_hosts, self.api_keys = app, allowed_hosts, api_keys

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            try:
                check_host(headers, self.allowed_hosts)
                if scope["method"] == "POST":
                    check_json(headers)
                if scope["path"] in DOC_PATHS:
                    check_auth(headers, self.api_keys)
            except ApiProblem as problem:
                problem.headers = {"Connection": "close", **(problem.headers or {})}
                await problem_response(Request(scope), problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)
