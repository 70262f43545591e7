"""JinaV3LateChunkingNodeParser: nodes the LlamaIndex way, vectors from the core, per-document context."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core import Document
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import SentenceSplitter, TokenTextSplitter
from llama_index.core.schema import MetadataMode, NodeRelationship

from jinav3 import Embedder, InvalidInputError, Seal
from llama_index.embeddings.jinav3 import LATE_CHUNKED_KEY, JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser


def _core_vectors(tiny_embedder, documents, nodes, dims, **options):
    """What the core gives for the same documents and the same spans the parser used."""
    spans = [[(n.start_char_idx, n.end_char_idx) for n in nodes if n.ref_doc_id == d.id_] for d in documents]
    chunks = tiny_embedder.late_chunk_many([d.text for d in documents], spans=spans, task="retrieval.passage",
                                           dimensions=dims, **options)
    return np.array([c.embedding for doc_chunks in chunks for c in doc_chunks])


def test_nodes_have_spans_relationships_metadata_and_vectors(parser, documents):
    nodes = parser.get_nodes_from_documents(documents)
    by_doc = {d.id_: d for d in documents}
    assert [n.ref_doc_id for n in nodes] == ["doc-a"] * 4 + ["doc-b"] * 2
    for node in nodes:
        source = by_doc[node.ref_doc_id]
        assert source.text[node.start_char_idx : node.end_char_idx] == node.text
        assert node.metadata["city"] == source.metadata["city"]
        assert len(node.embedding) == parser.dimensions
        seal = Seal.decode(node.metadata[LATE_CHUNKED_KEY])
        assert seal.space == f"{parser.model_name}@{parser.dimensions}#retrieval.passage"
        assert (seal.start, seal.end, seal.source) == (node.start_char_idx, node.end_char_idx, node.ref_doc_id)
        assert not seal.mismatches(text=node.text, vector=node.embedding, document=source.text)
        assert LATE_CHUNKED_KEY not in node.get_content(MetadataMode.EMBED)
        assert LATE_CHUNKED_KEY not in node.get_content(MetadataMode.LLM)
        assert "city: " in node.get_content(MetadataMode.LLM)
    first, second, last_a, first_b = nodes[0], nodes[1], nodes[3], nodes[4]
    assert NodeRelationship.PREVIOUS not in first.relationships
    assert first.relationships[NodeRelationship.NEXT].node_id == second.node_id
    assert second.relationships[NodeRelationship.PREVIOUS].node_id == first.node_id
    assert NodeRelationship.NEXT not in last_a.relationships  # no links across documents
    assert NodeRelationship.PREVIOUS not in first_b.relationships


def test_vectors_equal_the_core_and_documents_never_share_context(parser, documents, tiny_embedder):
    together = parser.get_nodes_from_documents(documents)
    expected = _core_vectors(tiny_embedder, documents, together, parser.dimensions)
    np.testing.assert_allclose([n.embedding for n in together], expected, atol=1e-5)
    alone = [n for d in documents for n in parser.get_nodes_from_documents([d])]
    np.testing.assert_allclose([n.embedding for n in alone], [n.embedding for n in together], atol=1e-5)
    plain = tiny_embedder.embed([n.text for n in together], task="retrieval.passage", dimensions=parser.dimensions)
    assert not np.allclose(plain, expected, atol=1e-3)  # late chunks are not chunks embedded alone


def test_one_late_chunking_pass_per_call_with_the_document_task(tiny_model, recorded, documents):
    parser = JinaV3LateChunkingNodeParser(model_name=tiny_model, device="cpu", task="retrieval.passage")
    parser._embedder = Embedder(recorded)
    parser.get_nodes_from_documents(documents)
    assert recorded.calls == [("late_chunk", "retrieval.passage", 2)]


async def test_async_equals_sync(parser, documents):
    sync = parser.get_nodes_from_documents(documents)
    asynchronous = await parser.aget_nodes_from_documents(documents)
    assert [(n.text, n.start_char_idx) for n in asynchronous] == [(n.text, n.start_char_idx) for n in sync]
    np.testing.assert_allclose([n.embedding for n in asynchronous], [n.embedding for n in sync], atol=1e-5)


def test_llama_index_splitters_and_core_chunkers(embed_model, documents, tiny_embedder):
    splitters = [
        {},  # default SentenceSplitter(chunk_size=256)
        {"text_splitter": SentenceSplitter(chunk_size=24, chunk_overlap=4)},
        {"text_splitter": TokenTextSplitter(chunk_size=12, chunk_overlap=3, separator=" ")},
        {"chunker": "paragraphs"},
        {"chunker": "tokens", "chunk_size": 8, "chunk_overlap": 2},
    ]
    counts = []
    for options in splitters:
        parser = JinaV3LateChunkingNodeParser(embed_model=embed_model, **options)
        nodes = parser.get_nodes_from_documents(documents)
        for node in nodes:
            source = documents[0] if node.ref_doc_id == "doc-a" else documents[1]
            assert source.text[node.start_char_idx : node.end_char_idx] == node.text
        expected = _core_vectors(tiny_embedder, documents, nodes, parser.dimensions)
        np.testing.assert_allclose([n.embedding for n in nodes], expected, atol=1e-5)
        counts.append(len(nodes))
    assert counts[0] == 2 and counts[3] == 3 and min(counts[1], counts[2], counts[4]) > 3


def test_long_document_uses_macro_windows(embed_model, tiny_embedder):
    text = " ".join(f"Sentence number {i} talks about Berlin and Paris." for i in range(40))
    parser = JinaV3LateChunkingNodeParser(embed_model=embed_model, chunker="sentences", window=64, overlap=16)
    document = Document(text=text, id_="long")
    nodes = parser.get_nodes_from_documents([document])
    assert len(nodes) == 40
    expected = _core_vectors(tiny_embedder, [document], nodes, parser.dimensions, window=64, overlap=16)
    np.testing.assert_allclose([n.embedding for n in nodes], expected, atol=1e-5)


def test_serialisation_round_trip(embed_model):
    splitter = SentenceSplitter(chunk_size=40, chunk_overlap=5)
    parser = JinaV3LateChunkingNodeParser(embed_model=embed_model, text_splitter=splitter)
    data = parser.to_dict()
    assert data["text_splitter"]["class_name"] == "SentenceSplitter"
    assert data["text_splitter"]["chunk_size"] == 40
    assert {k: data[k] for k in ("model_name", "dimensions", "task", "device")} == {
        "model_name": embed_model.model_name, "dimensions": embed_model.dimensions, "task": "retrieval.passage",
        "device": "cpu",
    }
    again = JinaV3LateChunkingNodeParser.from_dict(data).to_dict()
    assert again.pop("cache_buster") != data.pop("cache_buster")  # new on every call: never an IngestionCache hit
    assert again == data


def test_inherits_the_embed_model_settings(tiny_model):
    embed_model = JinaV3Embedding(model_name=tiny_model, device="cpu", dimensions=8, document_task="text-matching")
    parser = JinaV3LateChunkingNodeParser(embed_model=embed_model)
    assert (parser.model_name, parser.dimensions, parser.device, parser.task) == (tiny_model, 8, "cpu", "text-matching")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dimensions": 8}, "dimensions=8 differ from the embed model's dimensions=16"),
        ({"model_name": "jinaai/jina-embeddings-v3"}, "differs from the embed model's"),
    ],
)
def test_refuses_an_embed_model_of_another_space(embed_model, options, message):
    with pytest.raises(ValueError, match=message):
        JinaV3LateChunkingNodeParser(embed_model=embed_model, **options)


def test_refuses_a_non_jina_embed_model():
    with pytest.raises(ValueError, match="embed_model must be a JinaV3Embedding, got MockEmbedding"):
        JinaV3LateChunkingNodeParser(embed_model=MockEmbedding(embed_dim=16))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "retrieval"}, "unknown task"),
        ({"chunker": "words"}, "chunker"),
        ({"chunker": "sentences", "text_splitter": SentenceSplitter()}, "either text_splitter or chunker"),
        ({"text_splitter": SentenceSplitter(), "chunk_size": 64}, "set them on text_splitter"),
        ({"chunker": "paragraphs", "chunk_overlap": 4}, "no effect with chunker='paragraphs'"),
    ],
)
def test_bad_settings_are_rejected(embed_model, options, message):
    with pytest.raises(ValueError, match=message):
        JinaV3LateChunkingNodeParser(embed_model=embed_model, **options)


def test_empty_document_is_an_error(parser, documents):
    with pytest.raises(InvalidInputError, match="document 'empty' has no text"):
        parser.get_nodes_from_documents([*documents, Document(text="  \n", id_="empty")])


def test_dimensions_wider_than_the_model_are_rejected(tiny_model, documents):
    parser = JinaV3LateChunkingNodeParser(model_name=tiny_model, device="cpu", dimensions=48)
    with pytest.raises(InvalidInputError, match="dimensions must be between 1 and 32"):
        parser.get_nodes_from_documents(documents)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.sampled_from(["Answer: see above.", "Yes.", "| a | b | c |", "ERROR: disk full"]),
       repeats=st.integers(2, 40), joint=st.sampled_from(["\n", " ", "\n\n"]), size=st.integers(8, 40))
def test_repeated_text_gets_disjoint_nodes_in_order(embed_model, tiny_embedder, line, repeats, joint, size):
    """A document that repeats one line, cut by SentenceSplitter without overlap: the nodes follow each other
    without overlapping (LlamaIndex's own ``find`` from 0 would stack them on the first copies), cover the text,
    and carry the core's vectors for exactly those spans."""
    text = joint.join([line] * repeats)
    parser = JinaV3LateChunkingNodeParser(embed_model=embed_model,
                                          text_splitter=SentenceSplitter(chunk_size=size, chunk_overlap=0))
    nodes = parser.get_nodes_from_documents([Document(text=text, id_="doc")])
    spans = [(n.start_char_idx, n.end_char_idx) for n in nodes]
    assert [text[a:b] for a, b in spans] == [n.text for n in nodes]
    assert not text[: spans[0][0]].strip() and not text[spans[-1][1]:].strip()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start and not text[end:start].strip()
    np.testing.assert_array_equal(np.array([n.embedding for n in nodes]),
                                  _core_vectors(tiny_embedder, [Document(text=text, id_="doc")], nodes,
                                                embed_model.dimensions))


def test_language_goes_to_the_cores_sentence_chunker(tiny_model):
    text = "Am 3. Oktober kam sie. Im 2. Stock wohnt er."
    parser = JinaV3LateChunkingNodeParser(model_name=tiny_model, device="cpu", chunker="sentences", language="de")
    assert [n.text for n in parser.get_nodes_from_documents([Document(text=text)])] == [
        "Am 3. Oktober kam sie.", "Im 2. Stock wohnt er."]
    with pytest.raises(ValueError, match="ISO 639"):
        JinaV3LateChunkingNodeParser(model_name=tiny_model, device="cpu", chunker="sentences", language="German")
