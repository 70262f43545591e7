"""``jinav3 serve`` under hostile bodies: never a 5xx, always a JSON error body both Jina and OpenAI clients read.

Bodies are generated (Hypothesis): non-finite numbers in any numeric field, wrong types, unknown fields, huge
inputs, broken JSON. Also: over-long inputs are refused cheaply, 405 names the allowed methods, /v1/models
tells the truth about tasks and the model's name.
"""

from __future__ import annotations

import json
import resource
import time
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import Embedder
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer
from jinav3.server.tokens import encode_inputs

MODEL = "jina-embeddings-v3"
FIELDS = ["model", "input", "task", "dimensions", "late_chunking", "embedding_type", "encoding_type",
          "encoding_format", "normalized", "truncate", "user"]
NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"]
HOSTILE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["float", "base64", "retrieval.query", MODEL, ""]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                                             inner, max_size=3),
                      max_leaves=8)


def assert_json_error(response: httpx.Response) -> dict:
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        return {}
    payload = response.json()
    assert isinstance(payload["detail"], str) and payload["detail"]
    assert payload["error"]["message"] == payload["detail"]  # OpenAI's shape next to Jina's
    return payload


def post_raw(server: Any, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.base_url}/embeddings", content=body, headers={"Content-Type": "application/json"},
                      timeout=60)


@HOSTILE
@given(fields=st.dictionaries(st.sampled_from([*FIELDS, "colour"]), values, max_size=6))
def test_generated_bodies_never_get_a_5xx(server: Any, fields: dict) -> None:
    body = {"model": MODEL, "input": "hello", **fields}
    assert_json_error(post_raw(server, json.dumps(body).encode()))


@HOSTILE
@given(field=st.sampled_from(FIELDS), number=st.sampled_from(NON_FINITE),
       shape=st.sampled_from(["{}", "[{}]", '["a", {}]', '{{"text": {}}}']))
def test_non_finite_numbers_anywhere_are_a_4xx(server: Any, field: str, number: bytes, shape: str) -> None:
    value = shape.replace("{}", number.decode()) if field == "input" else number.decode()
    extra = {"encoding_format": '"float"'} if field != "encoding_format" else {}
    parts = {"model": f'"{MODEL}"', "input": '"hello"', **extra, field: value}
    body = ("{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode()
    payload = assert_json_error(post_raw(server, body))
    assert payload, "a non-finite number was accepted"
    assert "NaN" not in json.dumps(payload, allow_nan=False)  # the body itself is strict JSON


@HOSTILE
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_broken_json_is_a_422(server: Any, data: bytes) -> None:
    assert_json_error(post_raw(server, data))


def test_openai_client_shows_the_message(server: Any) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert "Model 'text-embedding-3-small' not found" in info.value.message
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.embeddings.create(model=MODEL, input="hello", dimensions=10**6)
    assert "dimensions must be between 1 and 32" in info.value.message


def test_405_names_the_allowed_methods(server: Any) -> None:
    response = httpx.get(f"{server.base_url}/embeddings")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert assert_json_error(response)["code"] == "METHOD_NOT_ALLOWED"


def test_models_reports_the_real_name_and_tasks(server: Any, minilm_embedder: Embedder) -> None:
    jina = httpx.get(f"{server.base_url}/models").json()["data"][0]
    assert jina["id"] == MODEL and jina["task_adapters"] == jina["tasks"] and len(jina["tasks"]) == 5
    with BackgroundServer(create_app(minilm_embedder, ServerConfig())) as minilm:
        card = httpx.get(f"{minilm.base_url}/models").json()["data"][0]
        assert card["id"] == "all-MiniLM-L6-v2" and card["task_adapters"] == [] and card["max_tokens"] == 256
        refused = httpx.post(f"{minilm.base_url}/embeddings", json={"model": MODEL, "input": "x"})
        assert "Available models: all-MiniLM-L6-v2" in assert_json_error(refused)["detail"]


def test_a_10_mb_text_is_refused_quickly_with_bounded_memory(server: Any) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for text in ("word " * 2_000_000, "a" * 10_000_000, "東京" * 5_000_000):
        started = time.monotonic()
        payload = assert_json_error(httpx.post(f"{server.base_url}/embeddings", json={"model": MODEL, "input": [text]},
                                               timeout=60))
        assert time.monotonic() - started < 10  # mostly moving 10 MB of JSON; it took 76 s before
        assert payload["code"] == "INPUT_TOO_MANY_TOKENS" and "more than max_length=8192" in payload["detail"]
        late = httpx.post(f"{server.base_url}/embeddings", timeout=60,
                          json={"model": MODEL, "input": [text[:5_000_000], text[5_000_000:]], "late_chunking": True})
        assert "more than the model's limit of 8192" in assert_json_error(late)["detail"]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 600, grown_mb  # the body and its JSON parse, not millions of token objects (was +1.3 GB)


@pytest.fixture(scope="module")
def short_context(tiny_checkpoint: Any, minilm_dir: Any) -> list[Embedder]:
    """Backends whose first prefix (2 x max_length characters) is small, so long texts are cheap to generate."""
    return [Embedder.local(str(tiny_checkpoint), device="cpu", max_length=40),
            Embedder.local(str(minilm_dir), device="cpu", max_length=40)]


words = st.text(alphabet=st.sampled_from("abcdeéxyz東京의 \n\t.,"), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(words, min_size=1, max_size=200), repeat=st.integers(1, 8),
       task=st.sampled_from([None, "retrieval.query", "separation"]))
def test_bounded_tokenisation_equals_full_tokenisation(short_context: list[Embedder], parts: list[str],
                                                       repeat: int, task: str | None) -> None:
    """Whatever the length: the same ids as tokenising everything (truncated), or the same refusal."""
    text = "".join(parts) * repeat
    for embedder in short_context:
        backend = embedder.backend
        np.testing.assert_array_equal(encode_inputs(backend, [text], task, truncate=True)[0],
                                      backend.encode_ids([text], task, truncate=True)[0])
        full = len(backend.encode_ids([text], task, truncate=True)[0])
        try:
            backend.encode_ids([text], task, truncate=False)
            fits = True
        except ValueError:
            fits = False
        try:
            encode_inputs(backend, [text], task, truncate=False)
            assert fits, "refused by the bound but fits"
        except ValueError:
            assert not fits and full == backend.max_length
