"""Fixtures of the API tests: the real ``jinav3 serve`` app on loopback, and a fault-injecting HTTP server.

Both are real HTTP servers on 127.0.0.1 (free ports); nothing is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="jinav3[server] is not installed")
pytest.importorskip("uvicorn", reason="jinav3[server] is not installed")
pytest.importorskip("prometheus_client", reason="jinav3[server] is not installed")


from jinav3 import Embedder
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer

FAKE_WIDTH = 16


@pytest.fixture(scope="session")
def start_server(tiny_embedder: Embedder) -> Iterator[Callable[..., BackgroundServer]]:
    """Start the real server app on the tiny checkpoint (shared model) with the given ServerConfig fields."""
    servers: list[BackgroundServer] = []

    def start(**config: object) -> BackgroundServer:
        server = BackgroundServer(create_app(tiny_embedder, ServerConfig(**config))).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server: Callable[..., BackgroundServer]) -> BackgroundServer:
    return start_server()


@pytest.fixture
def api(server: BackgroundServer, tiny_embedder: Embedder) -> Iterator[Embedder]:
    """``Embedder.api`` on the loopback server (no key: the default server has no authentication)."""
    emb = Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions, backoff=0.01)
    yield emb
    emb.close()


def fake_vector(text: str) -> np.ndarray:
    """What the fault server answers for ``text``: a fixed vector derived from its bytes."""
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:FAKE_WIDTH], dtype=np.uint8).astype(np.float32) - 100


@dataclass
class FaultServer:
    """Answers Jina-shaped requests with :func:`fake_vector`; ``script`` lists behaviours
    for the next requests in arrival order (``ok``, ``429``, ``503``, ``500``, ``400``, ``401``, ``slow``,
    ``trickle`` (a 200 answer sent one byte every ``slow_seconds``), ``garbage``, ``short``, ``drop``); when it is
    empty, ``default`` applies.
    ``retry_after`` is sent with 429 and 503. ``late_token_limit`` makes it count one token per character of a
    late-chunking request's joined inputs (far more than any estimate) and refuse, as a real server does, those
    over the limit. ``bodies`` and ``headers`` record every request."""

    script: list[str] = field(default_factory=list)
    default: str = "ok"
    retry_after: str | None = None
    slow_seconds: float = 1.0
    echo_detail: str = ""
    late_token_limit: int | None = None
    bodies: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_behaviour(self, body: dict, headers: dict) -> str:
        with self.lock:
            self.bodies.append(body)
            self.headers.append(headers)
            return self.script.pop(0) if self.script else self.default

    @property
    def requests(self) -> int:
        return len(self.bodies)

    width = FAKE_WIDTH

    @staticmethod
    def vectors(texts: list[str]) -> np.ndarray:
        return np.stack([fake_vector(t) for t in texts])


def _handler(state: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.loads(raw)
            behaviour = state.next_behaviour(body, dict(self.headers))
            texts = body["input"]
            data = [
                {"object": "embedding", "index": i, "embedding": base64.b64encode(fake_vector(t).tobytes()).decode()}
                for i, t in enumerate(texts)
            ]
            ok = json.dumps({"model": body["model"], "object": "list", "data": data,
                             "usage": {"total_tokens": 1, "prompt_tokens": 1}}).encode()
            counted = len(" ".join(texts))
            if body.get("late_chunking") and state.late_token_limit and counted > state.late_token_limit:
                detail = (f"late-chunking request has {counted} tokens (all inputs joined as one text), more than "
                          f"the model's limit of {state.late_token_limit}; send fewer chunks per request")
                self._send(400, json.dumps({"detail": detail, "code": "INPUT_TOO_MANY_TOKENS",
                                            "request_id": "rid-2"}).encode())
            elif behaviour == "ok":
                self._send(200, ok)
            elif behaviour == "trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(ok)))
                self.end_headers()
                try:
                    for byte in ok:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(state.slow_seconds)
                except OSError:  # the client gave up: expected
                    self.close_connection = True
            elif behaviour == "slow":
                time.sleep(state.slow_seconds)
                self._send(200, ok)
            elif behaviour == "garbage":
                self._send(200, b'{"data": [truncated')
            elif behaviour == "short":
                short = json.dumps({"model": "m", "object": "list", "data": data[:-1],
                                    "usage": {"total_tokens": 1, "prompt_tokens": 1}})
                self._send(200, short.encode())
            elif behaviour == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
            else:
                status = int(behaviour)
                detail = {"detail": f"injected {status}{state.echo_detail}", "code": f"CODE_{status}",
                          "request_id": "rid-1"}
                extra = {"Retry-After": state.retry_after} if state.retry_after and status in (429, 503) else {}
                self._send(status, json.dumps(detail).encode(), extra)

    return Handler


@contextmanager
def loopback_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threading ``http.server`` with ``handler`` on a free port of 127.0.0.1, for as long as the block runs;
    yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def loopback() -> Callable[[type[BaseHTTPRequestHandler]], AbstractContextManager[str]]:
    """:func:`loopback_http`, for tests that serve their own handler."""
    return loopback_http


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    state = FaultServer()
    with loopback_http(_handler(state)) as state.base_url:
        yield state


@pytest.fixture
def fault_api(fault_server: FaultServer) -> Iterator[Embedder]:
    emb = Embedder.api(base_url=fault_server.base_url, full_dimensions=FAKE_WIDTH, backoff=0.01, max_backoff=0.05,
                       timeout=5.0)
    yield emb
    emb.close()
