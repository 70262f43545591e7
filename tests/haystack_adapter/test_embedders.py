"""JinaV3TextEmbedder / JinaV3DocumentEmbedder: defaults, serialisation, errors, vectors equal to the core's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from haystack import Document
from haystack.components.preprocessors import DocumentSplitter
from haystack.utils import Secret

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from jinav3 import InvalidInputError
from jinav3.testing import same_vectors

from .texts import BERLIN, KYOTO

ENV_KEY = {"type": "env_var", "env_vars": ["JINA_API_KEY", "JINAAI_API_KEY"], "strict": False}
TEXT_TYPE = "haystack_integrations.components.embedders.jinav3.text_embedder.JinaV3TextEmbedder"
DOC_TYPE = "haystack_integrations.components.embedders.jinav3.document_embedder.JinaV3DocumentEmbedder"


def test_text_embedder_defaults_and_to_dict():
    embedder = JinaV3TextEmbedder()
    assert (embedder.model, embedder.backend, embedder.task, embedder.dimensions) == (
        None, "local", "retrieval.query", None)
    assert embedder.to_dict() == {
        "type": TEXT_TYPE,
        "init_parameters": {
            "model": None, "backend": "local", "api_key": ENV_KEY, "task": "retrieval.query", "dimensions": None,
            "backend_options": None, "base_url": None, "embedding_type": "float", "prefix": "", "suffix": "",
            "normalized": True, "truncate": False, "late_chunking": False,
        },
    }


def test_document_embedder_defaults_and_to_dict():
    assert JinaV3DocumentEmbedder().to_dict() == {
        "type": DOC_TYPE,
        "init_parameters": {
            "model": None, "backend": "local", "api_key": ENV_KEY, "task": "retrieval.passage", "dimensions": None,
            "backend_options": None, "base_url": None, "embedding_type": "float", "late_chunking": False,
            "prefix": "", "suffix": "", "batch_size": 32, "progress_bar": True, "meta_fields_to_embed": [],
            "embedding_separator": "\n", "normalized": True, "truncate": False, "overwrite": False,
            "strict_late_chunking": False,
        },
    }


def test_custom_parameters_round_trip():
    embedder = JinaV3DocumentEmbedder(
        "jina-embeddings-v3", backend="api", api_key=Secret.from_env_var("MY_KEY"), task="text-matching",
        dimensions=256, batch_size=4, progress_bar=False, meta_fields_to_embed=["title"], embedding_separator=" | ",
        backend_options={"base_url": "http://127.0.0.1:9", "timeout": 60},
    )
    data = embedder.to_dict()
    assert data["init_parameters"]["api_key"] == {"type": "env_var", "env_vars": ["MY_KEY"], "strict": True}
    assert data["init_parameters"]["backend_options"] == {"base_url": "http://127.0.0.1:9", "timeout": 60}
    restored = JinaV3DocumentEmbedder.from_dict(copy.deepcopy(data))
    assert isinstance(restored.api_key, Secret)
    assert restored.to_dict() == data
    text = JinaV3TextEmbedder(task=None, dimensions=64, prefix="q: ", truncate=True)
    assert JinaV3TextEmbedder.from_dict(text.to_dict()).to_dict() == text.to_dict()


def test_token_secret_refuses_to_serialise():
    embedder = JinaV3TextEmbedder(backend="api", api_key=Secret.from_token("sk-secret"))
    with pytest.raises(ValueError, match="token"):
        embedder.to_dict()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "query"}, "valid tasks are"),
        ({"dimensions": 0}, "dimensions must be at least 1"),
        ({"dimensions": "256"}, "dimensions must be an integer"),
        ({"backend": "remote"}, "unknown backend"),
        ({"backend_options": {"api_key": "x"}}, "not in backend_options"),
        ({"batch_size": 0}, "batch_size"),
        ({"late_chunking": True, "meta_fields_to_embed": ["title"]}, "late_chunking"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        JinaV3DocumentEmbedder(**kwargs)


@pytest.mark.parametrize("key", [Secret.from_token("jina_x"), Secret.from_env_var("MY_JINA_KEY")])
@pytest.mark.parametrize("component", [JinaV3TextEmbedder, JinaV3DocumentEmbedder, JinaV3LateChunkingSplitter])
def test_an_api_key_with_the_local_backend_is_refused_at_construction(component, key):
    """jina-haystack users pass api_key=...; without backend="api" the key would be ignored while the model loads
    from the hub (38 s, then a hub error). The default (read from the environment if set) stays fine."""
    with pytest.raises(InvalidInputError, match=r"api_key do not apply to backend='local'.*backend='api'"):
        component(api_key=key)
    component()  # the default key secret
    component(backend="api", api_key=key, base_url="http://127.0.0.1:9/v1")


def test_api_key_must_be_a_secret():
    with pytest.raises(TypeError, match="Secret"):
        JinaV3TextEmbedder(api_key="sk-plain")


def test_dimensions_wider_than_the_model_fail_at_run(tiny):
    with pytest.raises(InvalidInputError, match="dimensions must be between 1 and 32"):
        JinaV3TextEmbedder(**tiny, dimensions=64).run(text="hello")


def test_wrong_input_types(tiny):
    with pytest.raises(TypeError, match="expects a string"):
        JinaV3TextEmbedder(**tiny).run(text=["a list"])
    with pytest.raises(TypeError, match="list of Documents"):
        JinaV3DocumentEmbedder(**tiny).run(documents="not documents")
    with pytest.raises(TypeError, match="list of Documents"):
        JinaV3DocumentEmbedder(**tiny).run(documents=[Document(content="a"), "b"])


def test_warm_up_is_idempotent_shared_and_lazy(tiny):
    text = JinaV3TextEmbedder(**tiny)
    assert text._embedder is None
    text.warm_up()
    first = text._embedder
    text.warm_up()
    assert text._embedder is first
    docs = JinaV3DocumentEmbedder(**tiny)
    docs.run(documents=[Document(content="lazy")])  # run() warms up by itself
    assert docs._embedder is first  # one model per process for the same settings


@pytest.mark.cpu_class  # the default path, in the precision this CPU class gets: exactly the core's vectors
def test_text_embedder_uses_its_task_and_dimensions(tiny):
    embedder = JinaV3TextEmbedder(**tiny, dimensions=16, prefix="Q: ")
    result = embedder.run(text="Which city was divided?")
    core = embedder.embedder
    expected = core.embed(["Q: Which city was divided?"], "retrieval.query", 16)[0]
    assert isinstance(result["embedding"][0], float) and len(result["embedding"]) == 16
    assert same_vectors(result["embedding"], expected)
    assert np.isclose(np.linalg.norm(result["embedding"]), 1.0, atol=1e-5)
    assert result["meta"]["model"] == core.model_name
    instruction = core.backend.instruction("retrieval.query")  # what the model reads, counted independently
    read = len(core.tokenizer.encode(instruction + "Q: Which city was divided?").ids)
    assert result["meta"]["usage"] == {"prompt_tokens": read, "total_tokens": read}
    passage = JinaV3TextEmbedder(**tiny, dimensions=16, task="retrieval.passage").run(text="Which city was divided?")
    assert not np.allclose(result["embedding"], passage["embedding"], atol=1e-4)


def test_document_embedder_embeds_meta_and_never_mutates(tiny):
    docs = [Document(content="Berlin is big.", meta={"title": "Berlin"}), Document(content="Kyoto is old.")]
    before = copy.deepcopy(docs)
    embedder = JinaV3DocumentEmbedder(**tiny, meta_fields_to_embed=["title"], embedding_separator=" | ",
                                      batch_size=1, progress_bar=False)
    result = embedder.run(documents=docs)
    assert docs == before and all(doc.embedding is None for doc in docs)
    out = result["documents"]
    assert [d.id for d in out] == [d.id for d in docs]
    assert [d.meta for d in out] == [d.meta for d in docs]
    expected = embedder.embedder.embed(["Berlin | Berlin is big.", "Kyoto is old."], "retrieval.passage")
    np.testing.assert_allclose(np.array([d.embedding for d in out]), expected, atol=1e-6)
    assert result["meta"]["model"] == embedder.embedder.model_name
    instruction = embedder.embedder.backend.instruction("retrieval.passage")
    read = sum(len(embedder.embedder.tokenizer.encode(instruction + text).ids)
               for text in ["Berlin | Berlin is big.", "Kyoto is old."])
    assert result["meta"]["usage"] == {"prompt_tokens": read, "total_tokens": read}


async def test_sync_equals_async(tiny):
    docs = [Document(content=BERLIN), Document(content=KYOTO)]
    text = JinaV3TextEmbedder(**tiny)
    document = JinaV3DocumentEmbedder(**tiny, progress_bar=False)
    sync_q, async_q = text.run(text="capital?"), await text.run_async(text="capital?")
    np.testing.assert_allclose(sync_q["embedding"], async_q["embedding"], atol=1e-6)
    assert sync_q["meta"] == async_q["meta"]
    sync_d, async_d = document.run(documents=docs), await document.run_async(documents=docs)
    for a, b in zip(sync_d["documents"], async_d["documents"], strict=True):
        assert a.id == b.id
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)


def split(documents):
    return DocumentSplitter(split_by="period", split_length=1).run(documents=documents)["documents"]


def test_late_chunking_groups_by_source_in_split_order(tiny):
    sources = [Document(content=BERLIN, meta={"lang": "en"}), Document(content=KYOTO)]
    chunks = split(sources)
    shuffled = [chunks[i] for i in (4, 0, 3, 2, 5, 1)]
    embedder = JinaV3DocumentEmbedder(**tiny, late_chunking=True, batch_size=1, progress_bar=False)
    out = embedder.run(documents=shuffled)["documents"]
    assert [d.id for d in out] == [d.id for d in shuffled]
    core = embedder.embedder
    for source in sources:
        own = [c for c in chunks if c.meta["source_id"] == source.id]
        spans = [(c.meta["split_idx_start"], c.meta["split_idx_start"] + len(c.content)) for c in own]
        expected = core.late_chunk(source.content, spans=spans, task="retrieval.passage")
        got = {d.id: d.embedding for d in out}
        for chunk, late in zip(own, expected, strict=True):
            np.testing.assert_allclose(got[chunk.id], late.embedding, atol=1e-5)
    # a chunk's vector depends on its own source only, never on the other one in the batch
    alone = embedder.run(documents=[c for c in chunks if c.meta["source_id"] == sources[1].id])["documents"]
    for doc in alone:
        np.testing.assert_allclose(doc.embedding, {d.id: d.embedding for d in out}[doc.id], atol=1e-5)
    # and it is contextual: not what the chunk alone would get
    plain = JinaV3DocumentEmbedder(**tiny, progress_bar=False).run(documents=[chunks[1]])["documents"][0]
    assert not np.allclose(plain.embedding, {d.id: d.embedding for d in out}[chunks[1].id], atol=1e-4)


async def test_late_chunking_async_and_without_offsets(tiny):
    """Chunks without offsets are found in their source when it is in the run (else refused: test_late_chunking_
    sources); sync and async agree."""
    source = Document(id="s", content="Berlin is big. It has a wall.")
    chunks = [Document(content=t, meta={"source_id": "s"}) for t in ("Berlin is big.", "It has a wall.")]
    embedder = JinaV3DocumentEmbedder(**tiny, late_chunking=True, progress_bar=False)
    sync = embedder.run(documents=chunks, source_documents=[source])["documents"]
    asyn = (await embedder.run_async(documents=chunks, source_documents=[source]))["documents"]
    expected = embedder.embedder.late_chunk(source.content, spans=[(0, 14), (15, 29)])
    for a, b, late in zip(sync, asyn, expected, strict=True):
        np.testing.assert_allclose(a.embedding, late.embedding, atol=1e-5)
        np.testing.assert_allclose(b.embedding, late.embedding, atol=1e-5)


def test_int8_through_backend_options(tiny, tiny_checkpoint):
    """dtype='int8' reaches the core through backend_options; an unknown dtype is named at construction."""
    from jinav3 import Embedder

    options = {"model": tiny["model"], "backend_options": {"dtype": "int8"}}
    got = np.asarray(JinaV3TextEmbedder(**options).run(text="Berlin has a wall.")["embedding"])
    ref = Embedder.local(str(tiny_checkpoint), device="cpu").embed_query("Berlin has a wall.")
    assert float(got @ ref) > 0.99
    with pytest.raises(InvalidInputError, match="unknown dtype"):
        JinaV3TextEmbedder(model=tiny["model"], backend_options={"dtype": "int4"})
