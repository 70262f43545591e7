"""No Nagle delay: every connection the server accepts has ``TCP_NODELAY``, so a small answer on a kept-alive
connection leaves at once instead of waiting ~40 ms for the client's delayed ACK. Checked on the accepted sockets
themselves, for sockets bound the way ``jinav3 serve`` binds them and for a listening socket of protocol number 0
(on which asyncio never sets the option)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from jinav3 import Embedder
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer, bind_sockets


def accepted_sockets(server: BackgroundServer) -> list[socket.socket]:
    """The server side of every open connection."""
    return [protocol.transport.get_extra_info("socket") for protocol in server.server.server_state.connections]


def no_delay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def protocol_zero_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # protocol 0: asyncio leaves Nagle on
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize("bind", [lambda: bind_sockets("127.0.0.1", 0)[0], protocol_zero_socket],
                         ids=["bind_sockets", "protocol_0"])
def test_every_accepted_connection_sends_small_answers_at_once(tiny_embedder: Embedder,
                                                               bind: Callable[[], socket.socket]) -> None:
    with BackgroundServer(create_app(tiny_embedder, ServerConfig()), sock=bind()) as server, \
            httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        for _ in range(3):  # one kept-alive connection, several small answers
            assert client.get("/health").status_code == 200
        embedded = client.post("/v1/embeddings", json={"model": "jina-embeddings-v3", "input": ["one"]})
        assert embedded.status_code == 200
        sockets = accepted_sockets(server)
        assert len(sockets) == 1 and no_delay(sockets[0])


def test_the_sockets_jinav3_serve_binds_are_tcp_sockets() -> None:
    sockets = bind_sockets("127.0.0.1", 0)
    try:
        assert all(sock.proto == socket.IPPROTO_TCP for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
