"""Connection guards uvicorn lacks: a deadline for the request head, and a cap on open connections.

uvicorn closes idle kept-alive connections (``timeout_keep_alive``) but has no timer while a request's head is
arriving: a client that connects and trickles (or never finishes) its headers holds a socket forever. The
protocol class below arms a timer when a connection opens and after every answer, and disarms it once a request
head is complete; when it fires, the client gets a JSON 408 and the connection is closed. Connections beyond
``max_connections`` get a JSON 503 and are closed at once. (Slow bodies are bounded in the app, which reads the
body under its own deadline.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any


def _raw_answer(status: int, reason: str, code: str, detail: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 error answer with a JSON body in the server's error shape, closing the connection."""
    body = json.dumps({"code": code, "detail": detail, "request_id": "-",
                       "error": {"message": detail, "type": "timeout_error" if status == 408 else "server_error",
                                 "param": None, "code": code}}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close"]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def guarded_protocol(base: type[asyncio.Protocol], header_timeout: float, max_connections: int,
                     on_refusal: Callable[[str], None] | None = None) -> type:
    """A subclass of uvicorn's HTTP protocol ``base`` (h11 or httptools) with the two guards; ``on_refusal`` is told
    the reason of each connection they refuse (for the metrics)."""
    refused = on_refusal or (lambda reason: None)

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(_raw_answer(503, "Service Unavailable", "SERVICE_UNAVAILABLE",
                                            f"more than {max_connections} open connections; retry shortly", 1))
                transport.close()
                refused("too_many_connections")
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not None and self.cycle is not before:  # a request head is complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's head must also arrive in time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.write(_raw_answer(408, "Request Timeout", "REQUEST_TIMEOUT",
                                                 f"no complete request head within {header_timeout:g} s"))
                self.transport.close()
                refused("header_timeout")

    return GuardedProtocol
