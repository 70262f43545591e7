"""Bounded connections on real sockets (127.0.0.1): a request head beyond 64 KiB or 100 header lines gets a JSON 431
and its connection is closed, and the server's memory stays bounded however many such heads arrive. (Trickled bodies:
``test_server_connections.py``.)"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

MODEL = "jina-embeddings-v3"
HEAD = b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def connect(server: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def answer(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the answer, read until the server closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def rss_mb() -> float:
    """This process's resident memory now (the server runs in it)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def bounded(start_server: Any) -> Any:
    return start_server(max_connections=16)


def test_a_head_over_64_kib_gets_431_and_the_connection_is_closed(bounded: Any) -> None:
    sock = connect(bounded)
    sock.sendall(HEAD + b"X-Big: " + b"a" * (70 * 1024))  # never finished: the size alone decides
    status, payload = answer(sock)
    sock.close()
    assert status == 431 and payload["code"] == "REQUEST_HEADERS_TOO_LARGE" and "65536 bytes" in payload["detail"]


def test_too_many_headers_get_431_and_a_normal_number_is_served(bounded: Any) -> None:
    body = json.dumps({"model": MODEL, "input": ["hi"]}).encode()
    for count, expected in ((150, 431), (60, 200)):
        sock = connect(bounded)
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
        sock.sendall(HEAD + extra + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        status, payload = answer(sock)
        sock.close()
        assert status == expected, payload
        if expected == 431:
            assert "more than 100 headers" in payload["detail"]


def test_huge_heads_leave_memory_bounded(bounded: Any) -> None:
    """Ten clients at once each pushing an 8 MB header and holding the connection: each costs the server its 64 KiB,
    so RSS stays put while they are open and after they close (before the limit, 10 such heads of 20 MB added 147 MB
    that were never given back)."""
    before = rss_mb()
    chunk = b"a" * (1024 * 1024)
    sockets = [connect(bounded) for _ in range(10)]
    try:
        for sock in sockets:
            try:
                sock.sendall(HEAD + b"X-Big: ")
                for _ in range(8):
                    sock.sendall(chunk)
            except OSError:  # the server answered 431 and closed while we were still sending: expected
                pass
        time.sleep(0.2)
        assert rss_mb() - before < 40
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.2)
    assert rss_mb() - before < 40
    assert httpx.post(f"{bounded.base_url}/embeddings", json={"model": MODEL, "input": "ok"}).status_code == 200
