"""OpenAI-style clients against ``jinav3 serve``: the openai SDK (which always asks for base64), its packed
binary/ubinary types, token-id inputs (what langchain-openai sends by default), langchain-openai with its documented
setting, LlamaIndex's OpenAIEmbedding and Haystack's OpenAI embedder."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest

from jinav3.server.run import BackgroundServer
from jinav3.testing import same_vectors

MODEL = "jina-embeddings-v3"
TEXTS = ["Berlin is the capital of Germany.", "Kyoto has many temples."]


def native(server: BackgroundServer, **fields: object) -> list:
    answer = httpx.post(f"{server.base_url}/embeddings", json={"model": MODEL, "input": TEXTS, **fields}, timeout=30)
    assert answer.status_code == 200, answer.text
    return [item["embedding"] for item in answer.json()["data"]]


@pytest.fixture
def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_the_openai_sdk_gets_the_float_vectors(server: BackgroundServer, client: openai.OpenAI) -> None:
    """The SDK sends encoding_format="base64" on its own and decodes float32 bytes."""
    got = client.embeddings.create(model=MODEL, input=TEXTS, dimensions=16, extra_body={"task": "retrieval.query"})
    expected = native(server, dimensions=16, task="retrieval.query")
    assert same_vectors([item.embedding for item in got.data], expected)


@pytest.mark.parametrize(("kind", "dtype"), [("binary", np.int8), ("ubinary", np.uint8)])
def test_base64_with_a_packed_type_is_base64_of_the_packed_bytes(server: BackgroundServer, client: openai.OpenAI,
                                                                 kind: str, dtype: type) -> None:
    got = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="base64",
                                   extra_body={"embedding_type": kind})
    decoded = [np.frombuffer(base64.b64decode(item.embedding), dtype=dtype) for item in got.data]
    packed = native(server, embedding_type=kind)
    assert [row.tolist() for row in decoded] == packed
    assert native(server, embedding_type=kind, encoding_format="base64")[0] == got.data[0].embedding


def test_token_ids_get_a_422_that_names_the_langchain_setting(client: openai.OpenAI) -> None:
    """langchain-openai sends tiktoken ids unless check_embedding_ctx_length=False."""
    for ids in ([[9906, 1917], [15339]], [9906, 1917]):
        with pytest.raises(openai.UnprocessableEntityError) as info:
            client.embeddings.create(model=MODEL, input=ids)  # type: ignore[arg-type]
        assert "check_embedding_ctx_length=False" in info.value.message


def test_haystacks_openai_embedder_works_against_the_server(server: BackgroundServer) -> None:
    embedders = pytest.importorskip("haystack.components.embedders")
    from haystack.utils import Secret

    embedder = embedders.OpenAITextEmbedder(api_key=Secret.from_token("unused"), model=MODEL,
                                            api_base_url=server.base_url, dimensions=16)
    got = embedder.run(text=TEXTS[0])["embedding"]
    assert same_vectors(got, native(server, dimensions=16)[0])


def test_langchain_openai_works_with_its_documented_setting(server: BackgroundServer) -> None:
    """langchain-openai with check_embedding_ctx_length=False (as docs/api.md says) sends text and gets the vectors."""
    langchain_openai = pytest.importorskip("langchain_openai")
    embeddings = langchain_openai.OpenAIEmbeddings(model=MODEL, base_url=server.base_url, api_key="unused",
                                                   check_embedding_ctx_length=False, max_retries=0, dimensions=16)
    assert same_vectors(embeddings.embed_documents(TEXTS), native(server, dimensions=16))
    assert same_vectors(embeddings.embed_query(TEXTS[0]), native(server, dimensions=16)[0])


def test_llama_index_openai_embedding_works_with_model_name(server: BackgroundServer) -> None:
    """LlamaIndex's OpenAIEmbedding takes the served name through model_name= (docs/api.md)."""
    openai_embeddings = pytest.importorskip("llama_index.embeddings.openai")
    embedding = openai_embeddings.OpenAIEmbedding(model_name=MODEL, api_base=server.base_url, api_key="unused",
                                                  max_retries=0)
    assert same_vectors(embedding.get_text_embedding_batch(TEXTS), native(server))
    assert same_vectors(embedding.get_query_embedding(TEXTS[0]), native(server)[0])
