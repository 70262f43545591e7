"""The compositions of issue 35, LlamaIndex side: each is exact, or refused before a wrong vector is stored.

1. a reopened index refreshed without its parser (LlamaIndex does not persist transformations);
2. ``IngestionPipeline`` with its cache on and ``num_workers=2``;
3. a LlamaIndex node parser after ours;
4. a LlamaIndex node parser before ours;
and at query time, a fusion retriever that deduplicates by node hash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import (
    HierarchicalNodeParser,
    MarkdownNodeParser,
    SentenceSplitter,
    SentenceWindowNodeParser,
)
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.storage.docstore import SimpleDocumentStore

from jinav3 import BrokenSealError, InvalidInputError, LateChunkingRequiredError
from llama_index.embeddings.jinav3 import JinaV3Embedding, check_sealed_node
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

from .conftest import DIMS, DOC_A, DOC_B
from .stores import STORES, assert_exact, close_store, open_store, stored


@pytest.fixture
def fp32_model(tiny_model: str) -> JinaV3Embedding:
    return JinaV3Embedding(model_name=tiny_model, device="cpu", dtype="float32", dimensions=DIMS)


@pytest.fixture
def strict_model(tiny_model: str) -> JinaV3Embedding:
    return JinaV3Embedding(model_name=tiny_model, device="cpu", dtype="float32", dimensions=DIMS,
                           strict_late_chunking=True)


def _docs(texts: dict[str, str]) -> list[Document]:
    return [Document(text=text, id_=doc_id) for doc_id, text in texts.items()]


@pytest.mark.parametrize("kind", ["qdrant", "chroma"])
def test_a_reopened_index_refreshes_exactly_with_its_parser_and_never_plainly(tmp_path, strict_model, tiny_fp32,
                                                                               kind):
    """Case 1: an index persisted and reopened (``load_index_from_storage``, as a new process would) has
    ``Settings.transformations``' SentenceSplitter, not our parser. The strict embed model refuses the plain
    vectors of the edited document, so nothing wrong is stored; reopened with ``transformations=[parser]`` the
    same refresh is exact."""
    parser = JinaV3LateChunkingNodeParser(embed_model=strict_model, chunker="sentences")
    texts = {"doc-a": DOC_A, "doc-b": DOC_B}
    store = open_store(kind, tmp_path)
    context = StorageContext.from_defaults(vector_store=store)
    VectorStoreIndex.from_documents(_docs(texts), storage_context=context, embed_model=strict_model,
                                    transformations=[parser])
    context.persist(persist_dir=str(tmp_path / "index"))
    close_store(store)

    def reopen(**kwargs):
        again = open_store(kind, tmp_path)
        context = StorageContext.from_defaults(vector_store=again, persist_dir=str(tmp_path / "index"))
        return again, load_index_from_storage(context, embed_model=strict_model, **kwargs)

    texts["doc-a"] = DOC_A + " Its wall fell in 1989."
    store, index = reopen()
    with pytest.raises(LateChunkingRequiredError, match="transformations=\\[parser\\]"):
        index.refresh_ref_docs(_docs(texts))
    assert_exact(stored(store), {"doc-b": DOC_B}, tiny_fp32, DIMS)  # doc-a's old nodes went; nothing plain came
    close_store(store)
    store, index = reopen(transformations=[parser])
    index.refresh_ref_docs(_docs(texts))
    pairs = stored(store)
    assert {node.ref_doc_id for node, _ in pairs} == {"doc-a", "doc-b"}
    assert_exact(pairs, texts, tiny_fp32, DIMS)
    close_store(store)


def test_a_cached_pipeline_with_two_workers_is_exact(tmp_path, fp32_model, tiny_fp32):
    """Case 2: the cache on and ``num_workers=2`` (worker processes, where no call stack shows the pipeline): a
    document edited to the text of another still gets its own exact nodes."""
    parser = JinaV3LateChunkingNodeParser(embed_model=fp32_model, chunker="sentences")
    store = open_store("chroma", tmp_path)
    pipeline = IngestionPipeline(transformations=[parser, fp32_model], docstore=SimpleDocumentStore(),
                                 vector_store=store, docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE)
    texts = {"doc-1": "Berlin is big. It has a wall.", "doc-2": "Kyoto is old.", "doc-3": "Lyon has silk."}
    for edit in ({}, {"doc-3": "Berlin is big. It has a wall."}):
        texts.update(edit)
        pipeline.run(documents=_docs(texts), num_workers=2)
    pairs = stored(store)
    assert sorted({node.ref_doc_id for node, _ in pairs}) == ["doc-1", "doc-2", "doc-3"]
    assert_exact(pairs, texts, tiny_fp32, DIMS)


@pytest.mark.parametrize("after", [
    SentenceSplitter(chunk_size=16, chunk_overlap=0),
    SentenceWindowNodeParser.from_defaults(window_size=1),
    HierarchicalNodeParser.from_defaults(chunk_sizes=[64, 16], chunk_overlap=0),
], ids=["SentenceSplitter", "SentenceWindowNodeParser", "HierarchicalNodeParser"])
def test_a_node_parser_after_ours_is_refused(parser, embed_model, documents, after):
    """Case 3: LlamaIndex copies a node's embedding onto every node it splits it into; a late-chunked node refuses
    to be split, in a pipeline and in ``VectorStoreIndex.from_documents`` alike."""
    with pytest.raises(BrokenSealError, match="tried to split late-chunked node"):
        IngestionPipeline(transformations=[parser, after], disable_cache=True).run(documents=documents)
    with pytest.raises(BrokenSealError, match="BEFORE JinaV3LateChunkingNodeParser"):
        VectorStoreIndex.from_documents(documents, transformations=[parser, after], embed_model=embed_model)


def test_a_sentence_window_parser_before_ours_is_late_chunked_in_the_whole_document(fp32_model, tiny_fp32):
    """Case 4: SentenceWindowNodeParser's pieces cover their document; each keeps its id, window metadata and
    relationships and gets the late chunking of its span in the whole document (verified against the SOURCE hash)."""
    parser = JinaV3LateChunkingNodeParser(embed_model=fp32_model)
    documents = [Document(text=DOC_A, id_="doc-a"), Document(text=DOC_B, id_="doc-b")]
    windows = SentenceWindowNodeParser.from_defaults(window_size=1)
    pieces = windows.get_nodes_from_documents(documents)
    nodes = parser(pieces)
    assert [n.node_id for n in nodes] == [p.node_id for p in pieces]
    assert all("window" in n.metadata for n in nodes)
    assert_exact([(n, np.asarray(n.embedding)) for n in nodes], {"doc-a": DOC_A, "doc-b": DOC_B}, tiny_fp32, DIMS)
    alone = fp32_model.get_text_embedding_batch([p.text for p in pieces])
    assert not np.allclose([n.embedding for n in nodes], alone, atol=1e-3)  # not each piece on its own


@pytest.mark.parametrize("before", [SentenceSplitter(chunk_size=20, chunk_overlap=0), MarkdownNodeParser()],
                         ids=["SentenceSplitter", "MarkdownNodeParser"])
def test_a_parser_before_ours_whose_pieces_miss_text_is_refused(fp32_model, tiny_fp32, before):
    """Case 4, the other way: pieces that leave characters out (SentenceSplitter strips the whitespace between
    chunks) cannot spell their document, so they are refused rather than late-chunked out of context."""
    parser = JinaV3LateChunkingNodeParser(embed_model=fp32_model)
    text = "# Berlin\n\nBerlin is the capital. It is big.\n\n# Kyoto\n\nKyoto is old.  It has temples."
    pieces = before.get_nodes_from_documents([Document(text=text, id_="doc")])
    with pytest.raises(InvalidInputError, match=r"do not rebuild its text exactly.*text_splitter="):
        parser(pieces)


def test_strict_refuses_plain_passages_but_not_queries(strict_model):
    with pytest.raises(LateChunkingRequiredError, match="strict_late_chunking=True"):
        strict_model.get_text_embedding_batch(["Berlin is big."])
    assert len(strict_model.get_query_embedding("Where is Berlin?")) == DIMS
    assert strict_model.get_text_embedding_batch([]) == []


def test_a_fusion_retriever_keeps_equal_sentences_of_two_documents(parser, embed_model):
    """Query time: QueryFusionRetriever deduplicates by node hash; a seal names its document and place, so the same
    sentence in two documents is two nodes."""
    documents = [Document(text="Yes. Berlin is big.", id_="doc-a"), Document(text="Yes. Kyoto is old.", id_="doc-b")]
    index = VectorStoreIndex.from_documents(documents, transformations=[parser], embed_model=embed_model)
    fusion = QueryFusionRetriever([index.as_retriever(similarity_top_k=4)], num_queries=1, llm=MockLLM(),
                                  similarity_top_k=4)
    found = fusion.retrieve("Yes.")
    assert sorted((n.node.ref_doc_id, n.node.get_content()) for n in found if n.node.get_content() == "Yes.") == [
        ("doc-a", "Yes."), ("doc-b", "Yes.")]


@pytest.mark.parametrize("kind", STORES)
def test_every_store_keeps_the_seal(tmp_path, parser, documents, embed_model, kind):
    """The seal survives each real store's round trip and still holds for the vector the store hands back."""
    store = open_store(kind, tmp_path)
    context = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(documents, storage_context=context, embed_model=embed_model,
                                            transformations=[parser])
    pairs = stored(store, index.docstore)
    assert len(pairs) == 6
    for node, vector in pairs:
        node.embedding = vector.tolist()
        check_sealed_node(node, embed_model.sealed_space("retrieval.passage"))
    close_store(store)


WRITER = """
import sys
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser
from llama_index_adapter.stores import close_store, open_store
from pathlib import Path

model, folder = sys.argv[1], Path(sys.argv[2])
embed = JinaV3Embedding(model_name=model, device="cpu", dtype="float32", dimensions=16, strict_late_chunking=True)
parser = JinaV3LateChunkingNodeParser(embed_model=embed, chunker="sentences")
store = open_store("chroma", folder)
context = StorageContext.from_defaults(vector_store=store)
docs = [Document(text=sys.argv[3], id_="doc-a"), Document(text=sys.argv[4], id_="doc-b")]
VectorStoreIndex.from_documents(docs, storage_context=context, embed_model=embed, transformations=[parser])
context.persist(persist_dir=str(folder / "index"))
"""


def test_an_index_written_by_another_process_is_reopened_and_refreshed_exactly(tmp_path, strict_model, tiny_fp32,
                                                                               tiny_model):
    """Persist and reload across processes: another process indexes into Chroma on disk; this one reopens it with
    the parser, edits a document, and every stored vector is exact for the current texts."""
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", WRITER, tiny_model, str(tmp_path), DOC_A, DOC_B], check=True, env=env,
                   timeout=300)
    parser = JinaV3LateChunkingNodeParser(embed_model=strict_model, chunker="sentences")
    store = open_store("chroma", tmp_path)
    context = StorageContext.from_defaults(vector_store=store, persist_dir=str(tmp_path / "index"))
    index = load_index_from_storage(context, embed_model=strict_model, transformations=[parser])
    assert_exact(stored(store), {"doc-a": DOC_A, "doc-b": DOC_B}, tiny_fp32, DIMS)
    texts = {"doc-a": DOC_A.replace("three", "four"), "doc-b": DOC_B}
    index.refresh_ref_docs(_docs(texts))
    assert_exact(stored(store), texts, tiny_fp32, DIMS)
