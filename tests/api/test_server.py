"""``jinav3 serve`` speaks the Jina contract: shapes checked against the official OpenAPI document, errors,
limits, authentication, OpenAI clients, and graceful shutdown of the real command."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import openai
import pytest

from jinav3 import Embedder
from jinav3.matryoshka import decode_base64
from jinav3.testing import CORPUS, same_vectors, serve_command

# The schemas of POST /v1/embeddings, extracted from the official Jina OpenAPI document.
SPEC = json.loads((Path(__file__).parent / "jina_openapi_schemas.json").read_text())
TEXTS = CORPUS[:4]
KEY = "jina_test_key_for_the_loopback_server"


def check_schema(payload: Any, schema: str) -> None:
    """Validate against a schema of the official Jina OpenAPI document."""
    jsonschema.validate(payload, {"$ref": f"#/components/schemas/{schema}", "components": SPEC["components"]})


def post(server: Any, body: dict, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.base_url}/embeddings", json=body, timeout=30, **kwargs)


def request(**fields: Any) -> dict:
    return {"model": "jina-embeddings-v3", "input": TEXTS, **fields}


@pytest.fixture(scope="module")
def guarded(start_server: Any) -> Any:
    """A server with a key and small limits."""
    return start_server(api_keys=(KEY,), max_inputs=4, max_body_bytes=4000, max_request_tokens=300)


def test_request_and_response_follow_the_official_schemas(server: Any, tiny_embedder: Embedder) -> None:
    body = request(task="retrieval.passage", dimensions=16, embedding_type="float", normalized=True,
                   late_chunking=False, truncate=False)
    check_schema(body, "EmbeddingsV3Request")
    response = post(server, body)
    assert response.status_code == 200
    payload = response.json()
    check_schema(payload, "EmbeddingResponse")
    assert payload["object"] == "list" and payload["model"] == "jina-embeddings-v3"
    assert [d["index"] for d in payload["data"]] == [0, 1, 2, 3]
    assert payload["usage"]["total_tokens"] == payload["usage"]["prompt_tokens"] > 0
    assert same_vectors([d["embedding"] for d in payload["data"]], tiny_embedder.embed(TEXTS, "retrieval.passage", 16))


@pytest.mark.parametrize("embedding_type", ["binary", "ubinary", "base64"])
def test_encodings_match_the_core(server: Any, tiny_embedder: Embedder, embedding_type: str) -> None:
    payload = post(server, request(task="separation", embedding_type=embedding_type)).json()
    check_schema(payload, "EmbeddingResponse")
    got = [d["embedding"] for d in payload["data"]]
    want = tiny_embedder.embed(TEXTS, "separation", embedding_type=embedding_type)
    if embedding_type == "base64":
        assert same_vectors([decode_base64(g) for g in got], [decode_base64(w) for w in want])
    else:
        np.testing.assert_array_equal(np.array(got), want)


def test_single_string_textdoc_list_of_types_and_alias(server: Any) -> None:
    one = post(server, request(input="hello", encoding_type="ubinary")).json()
    assert len(one["data"]) == 1 and all(isinstance(v, int) for v in one["data"][0]["embedding"])
    many = post(server, request(input=[{"text": "hello"}, "world"], embedding_type=["float", "binary"])).json()
    # a dict keyed by type, as Jina's server does; the OpenAPI document's schema cannot express this case
    assert set(many["data"][1]["embedding"]) == {"float", "binary"}


def test_late_chunking_request(server: Any, tiny_embedder: Embedder) -> None:
    chunks = ["Berlin is the capital of Germany.", "Its more than 3.85 million inhabitants.", "It has rivers."]
    payload = post(server, request(input=chunks, late_chunking=True, task="retrieval.passage")).json()
    check_schema(payload, "EmbeddingResponse")
    local = tiny_embedder.late_chunk(" ".join(chunks), "sentences")
    assert same_vectors([d["embedding"] for d in payload["data"]], [c.embedding for c in local])


def test_openai_client_works(server: Any, tiny_embedder: Embedder) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    result = client.embeddings.create(model="jina-embeddings-v3", input=TEXTS, dimensions=8)  # base64 on the wire
    got = np.array([d.embedding for d in sorted(result.data, key=lambda d: d.index)])
    assert same_vectors(got, tiny_embedder.embed(TEXTS, None, 8))
    floats = client.embeddings.create(model="jina-embeddings-v3", input="hello", encoding_format="float")
    assert same_vectors(floats.data[0].embedding, tiny_embedder.embed(["hello"], None)[0])


def error(response: httpx.Response, status: int, schema: str = "ErrorResponse") -> dict:
    assert response.status_code == status, response.text
    payload = response.json()
    check_schema(payload, schema)
    if schema == "ErrorResponse":
        assert payload["request_id"] == response.headers["X-Request-ID"]
    return payload


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"task": "summarise"}, "task"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": 33}, "dimensions"),  # wider than the tiny model's 32
        ({"embedding_type": "int4"}, "embedding_type"),
        ({"input": []}, "input"),
        ({"input": [1, 2]}, "input"),
        ({"embedding_type": "float", "encoding_format": "base64"}, "embedding_type"),
    ],
)
def test_validation_errors_are_422_with_field_errors(server: Any, fields: dict, field: str) -> None:
    payload = error(post(server, request(**fields)), 422, "HTTPValidationError")
    assert any(e["field"].startswith(field) for e in payload["errors"]), payload
    assert field in payload["detail"]


def test_bad_requests_are_400_with_clear_details(server: Any) -> None:
    assert "Model 'jina-embeddings-v2'" in error(post(server, request(model="jina-embeddings-v2")), 400)["detail"]
    long_text = "Berlin is the capital of Germany. " * 1400
    detail = error(post(server, request(input=[long_text])), 400)["detail"]
    assert "more than max_length=8192" in detail and '"truncate": true' in detail
    assert post(server, request(input=[long_text], truncate=True)).status_code == 200
    chunks = ["Berlin is the capital of Germany. " * 700] * 2
    assert "late-chunking request has" in error(post(server, request(input=chunks, late_chunking=True)), 400)["detail"]
    empty_chunk = request(input=["a b", ""], late_chunking=True)
    assert "chunk 1 (characters 4..4) is empty" in error(post(server, empty_chunk), 400)["detail"]
    bad_json = httpx.post(f"{server.base_url}/embeddings", content=b"{not json", timeout=10,
                          headers={"Content-Type": "application/json"})
    error(bad_json, 422, "HTTPValidationError")
    assert error(httpx.get(f"{server.base_url}/nothing-here"), 404)["code"] == "RESOURCE_NOT_FOUND"


def test_limits_and_authentication(guarded: Any) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    assert error(post(guarded, request()), 401)["code"] == "AUTH_MISSING_API_KEY"
    assert error(post(guarded, request(), headers={"Authorization": "Bearer nope"}), 401)["code"] == \
        "AUTH_INVALID_API_KEY"
    assert post(guarded, request(), headers=auth).status_code == 200
    too_many = error(post(guarded, request(input=["x"] * 5), headers=auth), 400)
    assert too_many["detail"] == '"input" length 5 is larger than the largest allowed size 4'
    assert "4000 bytes" in error(post(guarded, request(input=["y" * 5000]), headers=auth), 400)["detail"]
    over_tokens = error(post(guarded, request(input=["Berlin " * 400]), headers=auth), 400)["detail"]
    assert "tokens, more than the limit of 300" in over_tokens
    assert httpx.get(f"{guarded.base_url}/models").status_code == 401
    models = httpx.get(f"{guarded.base_url}/models", headers=auth).json()
    assert models["data"][0]["id"] == "jina-embeddings-v3" and models["data"][0]["dimensions"] == 32
    assert httpx.get(guarded.base_url.removesuffix("/v1") + "/health").json()["status"] == "ok"


def test_client_key_from_environment_reaches_the_guarded_server(
    guarded: Any, tiny_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JINA_API_KEY", KEY)
    api = Embedder.api(base_url=guarded.base_url, full_dimensions=32)
    assert same_vectors(api.embed(TEXTS), tiny_embedder.embed(TEXTS))
    api.close()


@pytest.mark.skipif(os.name != "posix", reason="uses SIGTERM")
def test_serve_command_finishes_in_flight_requests_on_sigterm(tiny_checkpoint: Path) -> None:
    options = ("--batch-wait-ms", "1500", "--log-level", "warning")
    with serve_command(tiny_checkpoint, *options, ready_within=60) as (process, base):
        answers: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{base}/v1/embeddings", json=request(), timeout=30)))
        worker.start()
        time.sleep(0.5)  # the request now waits in the micro-batcher
        process.send_signal(signal.SIGTERM)
        worker.join(30)
        assert answers and answers[0].status_code == 200 and len(answers[0].json()["data"]) == len(TEXTS)
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
