"""Run the server with uvicorn: one process, one model, graceful shutdown on SIGINT/SIGTERM.

On a stop signal uvicorn stops accepting connections, lets in-flight requests finish (up to
``graceful_timeout`` seconds), then the app's lifespan drains the micro-batcher.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from jinav3.server.app import ServerConfig, create_app


def run_server(
    backend: Any, config: ServerConfig, *, host: str = "127.0.0.1", port: int = 8080,
    graceful_timeout: float | None = 30.0, log_level: str = "info",
) -> None:
    """Serve ``backend`` until a stop signal arrives."""
    import uvicorn

    logging.getLogger("jinav3").setLevel(log_level.upper())
    app = create_app(backend, config)
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout,
        lifespan="on", access_log=log_level == "debug",
    )


class BackgroundServer:
    """The app on uvicorn in a background thread, on a free port of ``host`` (tests, notebooks, benchmarks).

    ``with BackgroundServer(app) as server: Embedder.api(base_url=server.base_url)``; leaving the block shuts
    the server down gracefully.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
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
