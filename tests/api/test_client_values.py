"""The API client checks the values a server answers (issue 39): a real misbehaving HTTP server on loopback answers
well-formed bodies with broken values (Hypothesis picks the breakage, the row and the encoding); the client raises
:class:`ApiAnswerError` naming the server and the caller's row, retries nothing and hands nothing on."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import Embedder
from jinav3.backends.api import ApiAnswerError
from jinav3.backends.api_checks import NORM_TOLERANCE, token_ceiling
from jinav3.usage import TokenUsage

WIDTH = 8
FIXTURES = [HealthCheck.function_scoped_fixture]
ROW_BREAKAGES = ["nan", "inf", "-inf", "zero", "vanishing", "overflowing", "width"]
USAGE_BREAKAGES = [10**30, -1, 3.5, "12", True, 2**63]


def sound_vector(text: str) -> np.ndarray:
    """The raw vector a sound server answers for ``text``, seeded by it."""
    return np.random.default_rng(zlib.crc32(text.encode())).normal(size=WIDTH).astype(np.float32) * 3


def broken(vector: np.ndarray, breakage: str, scale: float) -> np.ndarray:
    """``vector`` broken as ``breakage`` says (``scale`` in [0, 1] picks the position, size or magnitude)."""
    out = vector.copy()
    if breakage in ("nan", "inf", "-inf"):
        out[int(scale * 10) % WIDTH] = float(breakage)
    elif breakage == "zero":
        out[:] = 0
    elif breakage == "vanishing":  # a norm below float32's reach: normalising it cannot give a unit vector
        out *= np.float32(10.0 ** -(14 + 30 * scale))
    elif breakage == "overflowing":  # squares past float32's range: normalising it would give zeros
        out = (out * np.float32(10.0 ** (20 + 18 * scale))).astype(np.float32)
    elif breakage == "width":
        out = np.concatenate([out, out[:1]]) if scale > 0.5 else out[:-1]
    elif breakage == "bf16":  # not broken: what a bf16 server answers, each value truncated to 8 significant bits
        out = (out.view(np.uint32) & 0xFFFF0000).view(np.float32) * np.float32(10.0 ** (12 * scale - 6))
    return out


@dataclass
class Misbehaving:
    """Answers every request with sound vectors, except the row whose text is ``bad_text`` (broken as ``breakage``)
    and, with ``bad_usage`` set, the usage of the request holding it; ``as_list`` answers float lists instead of
    base64. ``bodies`` records the requests."""

    base_url: str = ""
    bad_text: str | None = None
    breakage: str = "nan"
    scale: float = 0.0
    bad_usage: Any = None
    as_list: bool = False
    bodies: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict) -> bytes:
        with self.lock:
            self.bodies.append(body)
        texts, data = body["input"], []
        for i, text in enumerate(texts):
            vector = sound_vector(text)
            if text == self.bad_text and self.bad_usage is None:
                vector = broken(vector, self.breakage, self.scale)
            encoded = [float(x) for x in vector] if self.as_list else base64.b64encode(
                vector.astype("<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = self.bad_usage if self.bad_usage is not None and self.bad_text in texts else len(texts)
        return json.dumps({"model": body["model"], "object": "list", "data": data,
                           "usage": {"total_tokens": tokens, "prompt_tokens": tokens}}).encode()  # NaN as NaN


@pytest.fixture(scope="module")
def misbehaving(loopback: Callable[[type[BaseHTTPRequestHandler]], AbstractContextManager[str]],
                ) -> Iterator[Misbehaving]:
    state = Misbehaving()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            payload = state.answer(json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0")))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with loopback(Handler) as state.base_url:
        yield state


@pytest.fixture(scope="module")
def client(misbehaving: Misbehaving) -> Iterator[Embedder]:
    with Embedder.api(base_url=misbehaving.base_url, full_dimensions=WIDTH, max_batch_inputs=3, tokenizer=None,
                      backoff=0.01) as emb:
        yield emb


def texts_of(count: int, salt: int) -> list[str]:
    return [f"text {salt} {i}" for i in range(count)]


def sends_of(misbehaving: Misbehaving, text: str, since: int) -> int:
    return sum(text in body["input"] for body in misbehaving.bodies[since:])


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(count=st.integers(1, 8), data=st.data(), breakage=st.sampled_from(ROW_BREAKAGES),
       scale=st.floats(0, 1), as_list=st.booleans(), run_async=st.booleans(), salt=st.integers(0, 10**9))
def test_a_broken_row_is_refused_naming_the_server_and_the_row(
    misbehaving: Misbehaving, client: Embedder, count: int, data: st.DataObject, breakage: str, scale: float,
    as_list: bool, run_async: bool, salt: int,
) -> None:
    """NaN, ±Inf, an all-zero vector, a norm too small or too large for float32 normalisation, a row of another
    width: whichever row (in any request of a call split into requests of 3 inputs), sync or async, base64 or float
    lists."""
    texts = texts_of(count, salt)
    row = data.draw(st.integers(0, count - 1), label="row")
    misbehaving.bad_text, misbehaving.breakage, misbehaving.scale = texts[row], breakage, scale
    misbehaving.bad_usage, misbehaving.as_list = None, as_list
    usage, since = TokenUsage(), len(misbehaving.bodies)
    with pytest.raises(ApiAnswerError) as caught:
        if run_async:
            asyncio.run(client.aembed(texts, usage=usage))
        else:
            client.embed(texts, usage=usage)
    error = caught.value
    assert error.server == misbehaving.base_url and misbehaving.base_url in str(error)
    assert error.row == row and f"input {row}" in str(error), str(error)
    assert sends_of(misbehaving, texts[row], since) == 1  # not retried: a server that computed a NaN computes it again
    if not run_async:  # requests one at a time: only those before the broken one were counted (a token per input)
        assert usage.tokens <= row


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(count=st.integers(1, 6), data=st.data(), bad_usage=st.sampled_from(USAGE_BREAKAGES), salt=st.integers())
def test_absurd_usage_is_refused(misbehaving: Misbehaving, client: Embedder, count: int, data: st.DataObject,
                                 bad_usage: Any, salt: int) -> None:
    """10^30 tokens, a negative count, a fraction, a string, a boolean, more than 2^63: the answer is refused."""
    texts = texts_of(count, salt)
    row = data.draw(st.integers(0, count - 1), label="row")
    misbehaving.bad_text, misbehaving.bad_usage, misbehaving.as_list = texts[row], bad_usage, False
    with pytest.raises(ApiAnswerError, match="usage") as caught:
        client.embed(texts)
    first = row - row % 3  # the request of 3 inputs holding the row
    assert caught.value.row is None and f"inputs {first}..{min(first + 3, count) - 1}" in str(caught.value)
    assert misbehaving.base_url in str(caught.value)


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(count=st.integers(1, 6), salt=st.integers(), scale=st.floats(0, 1), raw=st.booleans())
def test_sound_answers_pass_unchanged(misbehaving: Misbehaving, client: Embedder, count: int, salt: int,
                                      scale: float, raw: bool) -> None:
    """A bf16 server's vector (values truncated to 8 significant bits) of any norm from 1e-6 to 1e6 reaches the
    caller, normalised to within NORM_TOLERANCE of one; when the caller asked raw vectors, a zero or vanishing one
    passes too, bit for bit."""
    texts = texts_of(count, salt)
    misbehaving.bad_usage, misbehaving.as_list, misbehaving.scale = None, False, scale
    misbehaving.bad_text, misbehaving.breakage = texts[-1], ("zero" if scale > 0.5 else "vanishing") if raw else "bf16"
    expected = np.stack([sound_vector(t) for t in texts])
    expected[-1] = broken(expected[-1], misbehaving.breakage, scale)
    vectors = client.embed(texts, normalized=not raw)
    if raw:
        np.testing.assert_array_equal(vectors, expected)
        return
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert np.abs(np.linalg.norm(vectors, axis=1) - 1).max() < NORM_TOLERANCE / 100


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(texts=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4),
       task=st.sampled_from(["retrieval.query", "retrieval.passage", "text-matching", None]))
def test_the_token_ceiling_is_above_any_real_count(tiny_fp32: Embedder, texts: list[str], task: str | None) -> None:
    """What a real server counts (the tiny jina-v3 model: XLM-R tokenizer, byte fallback, task instruction and
    special tokens) never exceeds the ceiling, for any Unicode text."""
    sequences = tiny_fp32.backend.encode_ids(texts, task, truncate=False)
    assert sum(len(ids) for ids in sequences) <= token_ceiling(texts)


@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURES)
@given(words=st.integers(2, 9), data=st.data(), breakage=st.sampled_from(["nan", "inf", "zero"]),
       seed=st.integers(0, 2**16))
def test_a_broken_late_chunk_is_refused_naming_the_document_and_span(
    misbehaving: Misbehaving, client: Embedder, words: int, data: st.DataObject, breakage: str, seed: int
) -> None:
    """Late chunking (requests of 3 inputs, context-only inputs carrying the rest of the window): a broken chunk
    vector is refused, naming the document and the span's place in the caller's list."""
    text = " ".join(f"w{seed}x{i}" for i in range(words))
    spans, at = [], 0
    for word in text.split(" "):
        spans.append((at, at + len(word)))
        at += len(word) + 1
    listed = data.draw(st.permutations(spans), label="listed")
    row = data.draw(st.integers(0, words - 1), label="row")
    misbehaving.bad_text, misbehaving.breakage, misbehaving.bad_usage = text[slice(*listed[row])], breakage, None
    misbehaving.as_list, misbehaving.scale = False, 0.0
    with pytest.raises(ApiAnswerError) as caught:
        client.late_chunk_many([text], spans=[listed])
    assert caught.value.row == row, str(caught.value)
    assert f"document 0, span {row} (characters {listed[row][0]}..{listed[row][1]})" in str(caught.value)
