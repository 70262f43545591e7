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

Slots go to clients that use them. Once more than half of ``max_connections`` are open, a connection waiting for
its head gets at most :data:`PRESSURE_TIMEOUT` seconds for it, so trickling or idle sockets turn over quickly. And a
connection beyond ``max_connections`` takes the slot of the connection that has waited longest for a request head
(idle, or trickling it), which gets a JSON 503; only when every open connection is busy with a request is the new
one refused with 503. A flood of trickling sockets thus evicts itself, while a normal client, whose head arrives at
once, keeps its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

PRESSURE_TIMEOUT = 1.0  # seconds for a request head once more than half the connection slots are taken


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


def no_delay(transport: Any) -> None:
    """Send small writes at once (``TCP_NODELAY``) on a TCP connection; nothing on other transports."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer may already be gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def guarded_protocol(base: type[asyncio.Protocol], header_timeout: float, max_connections: int,
                     on_refusal: Callable[[str], None] | None = None) -> type:
    """A subclass of uvicorn's HTTP protocol ``base`` (h11 or httptools) with the two guards; ``on_refusal`` is told
    the reason of each connection they refuse (for the metrics)."""
    refused = on_refusal or (lambda reason: None)
    waiting: dict[Any, None] = {}  # connections waiting for a request head, oldest first (an ordered set)

    def victim() -> Any:
        """The connection to give up its slot: the oldest one part-way through a head (trickling), else the oldest
        one that never sent a request, else the oldest idle kept-alive one; None when all are busy with requests."""
        fresh = idle = None
        for connection in waiting:
            if connection._partial:
                return connection
            if not connection._served and fresh is None:
                fresh = connection
            idle = idle or connection
        return fresh or idle

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _partial = False  # bytes of a request head have arrived, not all of it
        _served = False  # at least one answer was sent on this connection

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
            self._disarm()
            if not self.transport.is_closing():
                if not (self._served and not self._partial):
                    self.transport.write(_raw_answer(503, "Service Unavailable", "SERVICE_UNAVAILABLE",
                                                     f"more than {max_connections} open connections; retry shortly",
                                                     1))
                self.transport.close()
            refused("too_many_connections")

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not None and self.cycle is not before:  # a request head is complete
                self._partial = False
                self._disarm()
            elif self in waiting:
                self._partial = True

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._served = True
            if not self.transport.is_closing():
                self._arm()  # the next request's head must also arrive in time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
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
