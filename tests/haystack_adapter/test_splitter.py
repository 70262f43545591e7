"""JinaV3LateChunkingSplitter: DocumentSplitter-like chunks and ids, contextual vectors, serialisation, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from haystack import Document
from haystack.components.preprocessors import DocumentSplitter

from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter
from jinav3 import SEAL_KEY, InvalidInputError, SentenceChunker, check_seal

from .texts import BERLIN, KYOTO

SPLITTER_TYPE = (
    "haystack_integrations.components.preprocessors.jinav3.late_chunking_splitter.JinaV3LateChunkingSplitter"
)


def test_defaults_to_dict_and_back_with_a_nested_splitter():
    splitter = JinaV3LateChunkingSplitter()
    assert splitter.to_dict() == {
        "type": SPLITTER_TYPE,
        "init_parameters": {
            "model": None, "backend": "local",
            "api_key": {"type": "env_var", "env_vars": ["JINA_API_KEY", "JINAAI_API_KEY"], "strict": False},
            "task": "retrieval.passage", "dimensions": None, "backend_options": None, "base_url": None,
            "embedding_type": "float", "chunker": "sentences",
            "chunk_size": 256, "chunk_overlap": 0, "min_chars": 0, "language": "auto", "document_splitter": None,
            "window": None,
            "overlap": None, "normalized": True, "batch_size": 8, "progress_bar": True,
        },
    }
    nested = JinaV3LateChunkingSplitter(document_splitter=DocumentSplitter(split_by="word", split_length=5),
                                        dimensions=128, chunker="tokens", chunk_size=64, chunk_overlap=8)
    data = nested.to_dict()
    assert data["init_parameters"]["document_splitter"]["type"] == (
        "haystack.components.preprocessors.document_splitter.DocumentSplitter")
    restored = JinaV3LateChunkingSplitter.from_dict(copy.deepcopy(data))
    assert isinstance(restored.document_splitter, DocumentSplitter)
    assert restored.document_splitter.split_length == 5
    assert restored.to_dict() == data


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"chunker": "words"}, InvalidInputError, "unknown chunker"),
        ({"chunker": "tokens", "chunk_size": 8, "chunk_overlap": 8}, InvalidInputError, "chunk_overlap"),
        ({"task": "retrieval"}, InvalidInputError, "valid tasks are"),
        ({"dimensions": -1}, InvalidInputError, "dimensions"),
        ({"document_splitter": "word"}, TypeError, "splitter component"),
    ],
)
def test_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        JinaV3LateChunkingSplitter(**kwargs)


def test_wrong_inputs(tiny):
    splitter = JinaV3LateChunkingSplitter(**tiny, progress_bar=False)
    with pytest.raises(TypeError, match="list of Documents"):
        splitter.run(documents="text")
    with pytest.raises(ValueError, match="no content"):
        splitter.run(documents=[Document(content=None)])


def test_sentence_chunks_look_like_document_splitter_output(tiny):
    source = Document(content=BERLIN + "\f" + KYOTO, meta={"lang": "en"})
    before = copy.deepcopy(source)
    splitter = JinaV3LateChunkingSplitter(**tiny, dimensions=16, progress_bar=False)
    out = splitter.run(documents=[source, Document(content="   ")])["documents"]  # the blank one is skipped
    assert source == before
    spans = SentenceChunker().spans(source.content)
    assert [d.content for d in out] == [source.content[s:e] for s, e in spans]
    for i, (doc, (start, _)) in enumerate(zip(out, spans, strict=True)):
        assert doc.meta == {"lang": "en", "source_id": source.id, "page_number": 1 if i < 3 else 2,
                            "split_id": i, "split_idx_start": start, SEAL_KEY: doc.meta[SEAL_KEY]}
        seal = check_seal(doc.meta[SEAL_KEY], what="chunk", fix="", text=doc.content, vector=doc.embedding,
                          start=start, end=start + len(doc.content), document=source.content)
        assert seal.space == f"{splitter.model}@16"
        plain_meta = {k: v for k, v in doc.meta.items() if k != SEAL_KEY}
        plain = Document(content=doc.content, meta=plain_meta)  # what a plain split gives: same id
        assert doc.id == plain.id and len(doc.embedding) == 16
    expected = splitter.embedder.late_chunk(source.content, spans=spans, dimensions=16)
    np.testing.assert_allclose([d.embedding for d in out], [c.embedding for c in expected], atol=1e-5)


def test_with_document_splitter_the_output_is_that_split_plus_embeddings(tiny):
    sources = [Document(content=BERLIN), Document(content=KYOTO, meta={"lang": "en"})]
    plain = DocumentSplitter(split_by="word", split_length=6, split_overlap=2).run(documents=sources)["documents"]
    splitter = JinaV3LateChunkingSplitter(
        **tiny, document_splitter=DocumentSplitter(split_by="word", split_length=6, split_overlap=2), batch_size=1,
        progress_bar=False,
    )
    out = splitter.run(documents=sources)["documents"]
    assert [(d.id, d.content) for d in out] == [(d.id, d.content) for d in plain]
    assert [{k: v for k, v in d.meta.items() if k != SEAL_KEY} for d in out] == [d.meta for d in plain]
    core = splitter.embedder
    for source in sources:
        own = [d for d in out if d.meta["source_id"] == source.id]
        spans = [(d.meta["split_idx_start"], d.meta["split_idx_start"] + len(d.content)) for d in own]
        expected = core.late_chunk(source.content, spans=spans)
        np.testing.assert_allclose([d.embedding for d in own], [c.embedding for c in expected], atol=1e-5)


async def test_sync_equals_async_and_token_chunks(tiny):
    splitter = JinaV3LateChunkingSplitter(**tiny, chunker="tokens", chunk_size=12, chunk_overlap=3,
                                          progress_bar=False)
    docs = [Document(content=BERLIN), Document(content=KYOTO)]
    sync = splitter.run(documents=docs)["documents"]
    asyn = (await splitter.run_async(documents=docs))["documents"]
    assert len(sync) > 2 and [d.id for d in sync] == [d.id for d in asyn]
    for a, b in zip(sync, asyn, strict=True):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)


def test_language_goes_to_the_cores_sentence_chunker(tiny):
    text = "Am 3. Oktober kam sie. Im 2. Stock wohnt er."
    german = JinaV3LateChunkingSplitter(**tiny, language="de", progress_bar=False)
    assert [d.content for d in german.run(documents=[Document(content=text)])["documents"]] == [
        "Am 3. Oktober kam sie.", "Im 2. Stock wohnt er."]
    assert JinaV3LateChunkingSplitter.from_dict(german.to_dict()).language == "de"
    with pytest.raises(InvalidInputError, match="ISO 639"):
        JinaV3LateChunkingSplitter(**tiny, language="German")
