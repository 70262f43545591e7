"""Run the server with uvicorn: one process, one model, graceful and prompt shutdown on SIGINT/SIGTERM.

On a stop signal uvicorn stops accepting connections and gives in-flight requests ``graceful_timeout`` seconds.
The app is told at once (:meth:`EmbeddingService.begin_shutdown`): new requests get 503, and shortly before
the grace period ends every request still waiting is answered with a JSON 503 (``Retry-After``) instead of
being cut off; the micro-batcher then stops without computing anything more, so the process exits promptly.
Connections are guarded by the timeouts and the cap of :class:`ServerConfig` (:mod:`jinav3.server.protocol`).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jinav3.errors import InvalidInputError

if TYPE_CHECKING:
    from jinav3.server.app import ServerConfig


def _uvicorn_server(app: Any, *, graceful_timeout: float | None, log_level: str, access_log: bool,
                    **options: Any) -> Any:
    """A ``uvicorn.Server`` for ``app`` (built by :func:`create_app`) with the app's connection guards and the
    shutdown hand-off."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from jinav3.server.app import ServerConfig
    from jinav3.server.protocol import guarded_protocol

    state = getattr(app, "state", None)
    config: ServerConfig = getattr(state, "config", None) or ServerConfig()
    service = getattr(state, "service", None)

    class Server(uvicorn.Server):
        async def on_tick(self, counter: int) -> bool:
            should_exit = await super().on_tick(counter)
            if should_exit and service is not None:
                service.begin_shutdown(graceful_timeout)
            return should_exit

    metrics = getattr(state, "metrics", None)
    protocol = guarded_protocol(AutoHTTPProtocol, config.header_timeout, config.max_connections,
                                metrics.refused if metrics is not None else None,
                                max_head_bytes=config.max_head_bytes, max_headers=config.max_headers)
    return Server(uvicorn.Config(
        app, http=protocol, lifespan="on", log_level=log_level, access_log=access_log,
        timeout_keep_alive=config.keep_alive_timeout, timeout_graceful_shutdown=graceful_timeout, **options,
    ))


def _log_to_stderr(level: str) -> None:
    """The server's own lines (disconnects, shutdown, failures) next to uvicorn's, on stderr."""
    logger = logging.getLogger("jinav3")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (then only loopback ``Host`` names are valid)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound (not yet listening) sockets for ``host:port``, one per address the name has (as uvicorn would bind):
    taken before the model loads, so a busy port or an unknown host fails in a second, not after the load.

    Port 0 binds the name's first address only, on a free port (``sock.getsockname()[1]``)."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInputError(f"--host {host}: not an address or a known name ({exc.strerror})") from None
    unique = list(dict.fromkeys((family, address[:2]) for family, _, _, _, address in addresses))
    sockets: list[socket.socket] = []
    try:
        for family, address in unique[:1] if port == 0 else unique:
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY on it
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                reason = "it is in use (another server is listening there)" if exc.errno == errno.EADDRINUSE else (
                    exc.strerror or str(exc))
                raise InvalidInputError(f"cannot listen on {host}:{port}: {reason}; choose another --port "
                                        "(or --port 0 for a free one)") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def run_server(
    backend: Any, config: ServerConfig, *, host: str = "127.0.0.1", port: int = 8080,
    graceful_timeout: float | None = 30.0, log_level: str = "info", sockets: list[socket.socket] | None = None,
) -> None:
    """Serve ``backend`` until a stop signal arrives; on ``sockets`` when given (see :func:`bind_sockets`), else
    on ``host:port``."""
    from jinav3.server.app import create_app

    _log_to_stderr(log_level)
    if config.allowed_hosts is None and not is_loopback(host):  # reached by other names: the operator's choice
        config = replace(config, allowed_hosts=("*",))
    app = create_app(backend, config)
    server = _uvicorn_server(app, graceful_timeout=graceful_timeout, log_level=log_level,
                             access_log=log_level == "debug", host=host, port=port)
    server.run(sockets=sockets)


class BackgroundServer:
    """The app on uvicorn in a background thread, on a free port of ``host`` (tests, notebooks, benchmarks).

    ``with BackgroundServer(app) as server: Embedder.api(base_url=server.base_url)``; leaving the block shuts
    the server down gracefully.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, graceful_timeout: float | None = 30.0,
                 log_level: str = "warning", sock: socket.socket | None = None) -> None:
        """``sock``: a socket already bound (then ``host`` and ``port`` are its own); else one on ``host:port``."""
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        self._socket = sock
        host = sock.getsockname()[0]
        self.host, self.port = host, self._socket.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self.app = app
        self.server = _uvicorn_server(app, graceful_timeout=graceful_timeout, log_level=log_level, access_log=False)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join()
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
