"""``usage=`` through the API backend: the sum of what the server reports per request, equal to the local
backend's count for the same work (``jinav3 serve`` counts as the local backend does); failed attempts cost
nothing."""

from __future__ import annotations

from jinav3 import Embedder
from jinav3.testing import CORPUS
from jinav3.usage import TokenUsage

TEXTS = CORPUS[:7]
DOCUMENT = " ".join(CORPUS[:5])  # single spaces: the server's join of the chunks reproduces the document


def counted(call) -> int:
    usage = TokenUsage()
    call(usage)
    assert usage.complete
    return usage.tokens


async def test_api_usage_equals_the_local_count(server, tiny_embedder: Embedder) -> None:
    api = Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions, max_batch_inputs=2)
    try:
        local = counted(lambda u: tiny_embedder.embed(TEXTS, "retrieval.query", usage=u))
        assert counted(lambda u: api.embed(TEXTS, "retrieval.query", usage=u)) == local  # 4 requests summed
        awaited = TokenUsage()
        await api.aembed(TEXTS, "retrieval.query", usage=awaited)
        assert awaited.tokens == local
    finally:
        api.close()
    whole = Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions)
    try:  # the document fits one late-chunking request: the same count as one local pass
        late_local = counted(lambda u: tiny_embedder.late_chunk(DOCUMENT, usage=u))
        assert counted(lambda u: whole.late_chunk(DOCUMENT, usage=u)) == late_local
    finally:
        whole.close()
    split = Embedder.api(base_url=server.base_url, full_dimensions=tiny_embedder.dimensions, max_batch_inputs=2)
    try:  # overlapping requests of two chunks each: every request is billed, shared chunks twice
        assert counted(lambda u: split.late_chunk(DOCUMENT, usage=u)) > late_local
    finally:
        split.close()


def test_retried_attempts_are_not_counted(fault_server, fault_api: Embedder) -> None:
    fault_server.script = ["503", "ok", "429", "ok"]
    usage = TokenUsage()
    fault_api.embed(["a"], "retrieval.passage", usage=usage)
    fault_api.embed(["b"], "retrieval.passage", usage=usage)
    assert fault_server.requests == 4 and usage.tokens == 2  # the fake server reports 1 token per answer
