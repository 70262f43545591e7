"""Browser-safe defaults: a web page cannot make the server compute (text/plain POST), cannot read its answers by
DNS rebinding (foreign Host names), and cannot read the docs without the key; keys stay off the command line."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from jinav3.errors import InvalidInputError
from jinav3.server.guards import host_name
from jinav3.server.keys import COMMAND_LINE_WARNING, ENV_VARIABLE, resolve_keys
from jinav3.server.run import BackgroundServer, is_loopback
from jinav3.testing import serve_command

MODEL = "jina-embeddings-v3"
BODY = b'{"model": "jina-embeddings-v3", "input": ["hello"]}'
KEY = "browser_test_key"


def root(server: BackgroundServer) -> str:
    return f"http://{server.host}:{server.port}"


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])
def test_posts_that_are_not_json_get_415_and_are_not_computed(server: BackgroundServer, kind: str | None) -> None:
    batcher = server.app.state.service.batcher
    rounds = batcher.rounds
    headers = {"Content-Type": kind} if kind else {}
    answer = httpx.post(f"{server.base_url}/embeddings", content=BODY, headers=headers, timeout=30)
    assert answer.status_code == 415, answer.text
    assert answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE" and answer.json()["error"]["message"]
    assert batcher.rounds == rounds


def test_json_with_a_charset_is_served(server: BackgroundServer) -> None:
    answer = httpx.post(f"{server.base_url}/embeddings", content=BODY,
                        headers={"Content-Type": "Application/JSON; charset=utf-8"}, timeout=30)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/models", "/health", "/docs", "/openapi.json"])
def test_a_foreign_host_name_is_refused_on_loopback(server: BackgroundServer, path: str) -> None:
    """DNS rebinding: a page on evil.example resolves its name to 127.0.0.1; the Host header still says evil."""
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example"):
        answer = httpx.request("POST" if path == "/v1/embeddings" else "GET", f"{root(server)}{path}",
                               content=BODY, headers={"Host": host, "Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 400 and answer.json()["code"] == "INVALID_HOST", (host, answer.text)
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "LOCALHOST", f"[::1]:{server.port}"):
        answer = httpx.get(f"{root(server)}/health", headers={"Host": host}, timeout=30)
        assert answer.status_code == 200, (host, answer.text)


def test_allowed_hosts_are_configurable(start_server: Callable[..., BackgroundServer]) -> None:
    named = start_server(allowed_hosts=("embed.internal",))
    assert httpx.get(f"{root(named)}/health", headers={"Host": "embed.internal:8080"}).status_code == 200
    assert httpx.get(f"{root(named)}/health", headers={"Host": "evil.example"}).status_code == 400
    assert httpx.get(f"{root(named)}/health").status_code == 400  # 127.0.0.1 was not listed
    anything = start_server(allowed_hosts=("*",))
    assert httpx.get(f"{root(anything)}/health", headers={"Host": "evil.example"}).status_code == 200


def test_host_names_and_loopback_binds() -> None:
    assert host_name("LocalHost:8080") == "localhost" and host_name("[::1]:80") == "::1"
    assert host_name("::1") == "::1" and host_name("example.org") == "example.org"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_docs_need_the_key_when_one_is_set(start_server: Callable[..., BackgroundServer],
                                           server: BackgroundServer) -> None:
    keyed = start_server(api_keys=(KEY,))
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(f"{root(keyed)}{path}").status_code == 401
        assert httpx.get(f"{root(keyed)}{path}", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{root(keyed)}{path}", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.get(f"{root(server)}{path}").status_code == 200  # no key set: open, on loopback only


def test_keys_come_from_files_and_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# serving keys\nfirst_key\n\n  second_key  \n")
    key_file.chmod(0o600)
    assert resolve_keys([], [key_file], {ENV_VARIABLE: "env_key"}) == (("first_key", "second_key"), [])
    assert resolve_keys([], [], {ENV_VARIABLE: "a, b,"}) == (("a", "b"), [])
    assert resolve_keys([], [], {}) == ((), [])
    keys, warnings = resolve_keys(["cli_key"], [], {})
    assert keys == ("cli_key",) and warnings == [COMMAND_LINE_WARNING] and "other" not in warnings[0]
    assert "any local user can read it" in COMMAND_LINE_WARNING
    if os.name == "posix":
        key_file.chmod(0o644)
        assert "readable by other users" in resolve_keys([], [key_file], {})[1][0]
        key_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(InvalidInputError, match="holds no key"):
        resolve_keys([], [empty], {})
    with pytest.raises(InvalidInputError, match="cannot read"):
        resolve_keys([], [tmp_path / "missing"], {})


def test_serve_takes_its_key_from_a_file_and_warns_about_the_command_line(tiny_checkpoint: Path,
                                                                          tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    key_file.chmod(0o600)
    log = tmp_path / "serve.log"
    with serve_command(tiny_checkpoint, "--api-key-file", str(key_file), "--api-key", "visible_key", log=log,
                       ready_within=60) as (_, base):
        headers = {"Content-Type": "application/json"}
        body = {"model": MODEL, "input": ["hi"]}
        assert httpx.post(f"{base}/v1/embeddings", json=body, timeout=30).status_code == 401
        for key in (KEY, "visible_key"):
            answer = httpx.post(f"{base}/v1/embeddings", json=body, timeout=30,
                                headers={**headers, "Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
    assert COMMAND_LINE_WARNING in log.read_text()
