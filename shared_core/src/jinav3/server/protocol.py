"""Connection guards uvicorn lacks: no Nagle delay, a deadline for the request head, and a cap on open connections.

Every accepted connection gets ``TCP_NODELAY``. asyncio sets it only on sockets whose protocol number is
``IPPROTO_TCP``; sockets bound by hand (``socket.socket(family, SOCK_STREAM)``, protocol 0) and the connections
accepted on them never got it, so a small answer on a kept-alive connection waited for the client's delayed ACK:
a floor of about 40 ms on every request.

uvicorn closes idle kept-alive connections (``timeout_keep_alive``) but has no timer while a request's head is
arriving: a client that connects and trickles (or never finishes) its headers holds a socket forever. The
protocol class below arms a timer when a connection opens and after every answer, and disarms it once a request
head is complete; when it fires, the client gets a JSON 408 and the connection is closed. (Slow bodies are bounded
in the app, which reads the body under its own deadline.)

Request heads are bounded: beyond ``max_head_bytes`` (64 KiB) or ``max_headers`` header lines the client gets a
JSON 431 and the connection is closed, so a 20 MB header costs the server 64 KiB, not 20 MB of memory it keeps.

Slots go to clients that use them. Once more than half of ``max_connections`` are open, a connection waiting for
its head gets at most :data:`PRESSURE_TIMEOUT` seconds for it, so trickling or idle sockets turn over quickly. And a
connection beyond ``max_connections`` takes the slot of the connection that has waited longest for a request head
part-way through (trickling it), else of the one whose request body has been arriving longest (at least
:data:`PRESSURE_TIMEOUT` seconds: a trickled body), else of the oldest idle one; it gets a JSON 503. Only when every
open connection is busy with a request is the new one refused with 503. A flood of trickling sockets, heads or
bodies, thus evicts itself, while a normal client, whose request arrives at once, keeps its slot. (The app also
bounds each body by ``body_timeout``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

PRESSURE_TIMEOUT = 1.0  # seconds for a request head once more than half the connection slots are taken
#: A request body arriving slower than this (bytes per second, averaged since it began, after a short grace) is a
#: trickle: under pressure its connection gives up its slot, however young. A client on any real link sends faster.
MIN_BODY_RATE = 1024.0
BODY_RATE_GRACE = 0.1
MAX_HEAD_BYTES = 64 * 1024  # request line and headers
MAX_HEADERS = 100


class HeadTooLarge(Exception):
    """Raised from the parser's header callback to stop parsing a head with too many headers."""


_ERROR_TYPES = {408: "timeout_error", 503: "server_error"}


def _raw_answer(status: int, reason: str, code: str, detail: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 error answer with a JSON body in the server's error shape, closing the connection."""
    body = json.dumps({"code": code, "detail": detail, "request_id": "-",
                       "error": {"message": detail, "type": _ERROR_TYPES.get(status, "invalid_request_error"),
                                 "param": None, "code": code}}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close"]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def no_delay(transport: Any) -> None:
    """Send small writes at once (``TCP_NODELAY``) on a TCP connection; nothing on other transports."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer may already be gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def guarded_protocol(base: type[asyncio.Protocol], header_timeout: float, max_connections: int,
                     on_refusal: Callable[[str], None] | None = None, *, max_head_bytes: int = MAX_HEAD_BYTES,
                     max_headers: int = MAX_HEADERS) -> type:
    """A subclass of uvicorn's HTTP protocol ``base`` (h11 or httptools) with the guards; ``on_refusal`` is told
    the reason of each connection they refuse (for the metrics)."""
    refused = on_refusal or (lambda reason: None)
    waiting: dict[Any, None] = {}  # connections waiting for a request head, oldest first (an ordered set)
    receiving: dict[Any, list[float]] = {}  # connections whose request body is arriving, oldest first: [since, bytes]

    def victim() -> Any:
        """The connection to give up its slot: the oldest one part-way through a head (trickling), else the one
        whose body has been arriving longest (for :data:`PRESSURE_TIMEOUT` at least), else the one whose body
        arrives slowest below :data:`MIN_BODY_RATE`, else the oldest one that never sent a request, else the oldest
        idle kept-alive one; None when all are busy with requests."""
        fresh = idle = None
        for connection in waiting:
            if connection._partial:
                return connection
            if not connection._served and fresh is None:
                fresh = connection
            idle = idle or connection
        slowest, slowest_rate = None, MIN_BODY_RATE
        for connection, (since, received) in receiving.items():
            age = connection.loop.time() - since
            if age >= PRESSURE_TIMEOUT:
                return connection  # the oldest body still arriving after the pressure deadline
            rate = received / age if age >= BODY_RATE_GRACE else float("inf")
            if rate < slowest_rate:
                slowest, slowest_rate = connection, rate
        return slowest or fresh or idle

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _partial = False  # bytes of a request head have arrived, not all of it
        _served = False  # at least one answer was sent on this connection
        _head_bytes = 0  # bytes received since the request head began
        _header_count = 0  # header lines of the request head being parsed

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            no_delay(transport)
            if len(self.connections) > max_connections:
                other = victim()
                if other is None:  # every slot is busy with a request
                    self._refuse()
                    return
                other._refuse()
            self._arm()

        def _refuse(self) -> None:
            """Give up the slot: a JSON 503, except on an idle kept-alive connection, which is closed silently (a
            client sending its next request just then would read the 503 as that request's answer)."""
            idle = self in waiting and self._served and not self._partial
            self._disarm()
            receiving.pop(self, None)
            if not self.transport.is_closing():
                if not idle:
                    self.transport.write(_raw_answer(503, "Service Unavailable", "SERVICE_UNAVAILABLE",
                                                     f"more than {max_connections} open connections; retry shortly",
                                                     1))
                self.transport.close()
            refused("too_many_connections")

        def data_received(self, data: bytes) -> None:
            heading = self in waiting
            if heading:
                self._head_bytes += len(data)
            before = self.cycle
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self.cycle is not None and self.cycle is not before:  # a request head is complete
                self._partial = False
                self._head_bytes = 0
                self._disarm()
            elif heading:
                self._partial = True
                if self._head_bytes > max_head_bytes:
                    self._head_too_large(f"the request head is larger than {max_head_bytes} bytes")
                    return
            self._track_body(len(data))

        def _track_body(self, received: int) -> None:
            """Note whether this connection's request body is still arriving, and how much of it came (a slow one is
            a candidate to give up its slot)."""
            cycle = self.cycle
            if cycle is not None and cycle.more_body and not cycle.response_complete:
                receiving.setdefault(self, [self.loop.time(), 0.0])[1] += received
            else:
                receiving.pop(self, None)

        def on_header(self, name: bytes, value: bytes) -> None:  # httptools' callback (h11 bounds heads itself)
            self._header_count += 1
            if self._header_count > max_headers:
                raise HeadTooLarge(f"the request has more than {max_headers} headers")
            super().on_header(name, value)  # type: ignore[misc]

        def on_message_begin(self) -> None:  # httptools: a new request head starts
            self._header_count = 0
            super().on_message_begin()  # type: ignore[misc]

        def send_400_response(self, msg: str) -> None:  # the parser failed: a 431 when it was stopped for that
            if self._header_count > max_headers:
                self._head_too_large(f"the request has more than {max_headers} headers")
                return
            super().send_400_response(msg)  # type: ignore[misc]

        def _head_too_large(self, detail: str) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(_raw_answer(431, "Request Header Fields Too Large",
                                                 "REQUEST_HEADERS_TOO_LARGE", f"{detail}; send a smaller one"))
                self.transport.close()
            refused("head_too_large")

        def on_response_complete(self) -> None:
            super().on_response_complete()
            receiving.pop(self, None)
            self._served = True
            if not self.transport.is_closing():
                self._arm()  # the next request's head must also arrive in time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            receiving.pop(self, None)
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            timeout = header_timeout
            if len(self.connections) > max_connections // 2:  # slots run low: no time to waste on slow heads
                timeout = min(timeout, PRESSURE_TIMEOUT)
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)
            waiting[self] = None

        def _disarm(self) -> None:
            waiting.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            waiting.pop(self, None)
            idle = self.cycle is None or self.cycle.response_complete
            if idle and not self.transport.is_closing():
                self.transport.write(_raw_answer(408, "Request Timeout", "REQUEST_TIMEOUT",
                                                 f"no complete request head within {header_timeout:g} s"))
                self.transport.close()
                refused("header_timeout")

    return GuardedProtocol
