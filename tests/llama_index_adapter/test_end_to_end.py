"""End to end with a real small model, and the RAG example run on the tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex

from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def corpus_index(minilm_dir):
    embed_model = JinaV3Embedding(model_name=str(minilm_dir), device="cpu")
    documents = SimpleDirectoryReader(str(EXAMPLES / "corpus"), required_exts=[".txt"]).load_data()
    parser = JinaV3LateChunkingNodeParser(embed_model=embed_model, chunker="sentences")
    return VectorStoreIndex.from_documents(documents, transformations=[parser], embed_model=embed_model)


@pytest.mark.parametrize(
    ("query", "source", "words"),
    [
        ("Which city was divided by a wall?", "berlin_en.txt", "it was divided"),
        ("Which airport replaced Tegel?", "berlin_en.txt", "replacing the older airport"),
        ("Wo steht die Elbphilharmonie?", "hamburg_de.txt", "Elbphilharmonie"),
    ],
)
def test_vector_store_index_retrieves_the_expected_chunk(corpus_index, query, source, words):
    best = corpus_index.as_retriever(similarity_top_k=1).retrieve(query)[0].node
    assert best.metadata["file_name"] == source
    assert words in best.get_content()


def test_rag_example_runs_on_the_tiny_checkpoint(tiny_model, capsys, load_example):
    example = load_example("llama_index_rag")
    assert example.main(["--model", tiny_model, "--dimensions", "16", "--top", "2", "Where is Berlin?"]) == 0
    out = capsys.readouterr().out
    assert "late-chunked nodes with" in out and "(16 dimensions)" in out
    assert str(tiny_model) not in out  # the model's name, not its folder's path
    hits = [line for line in out.splitlines() if line.startswith("  ") and ".txt[" in line]
    assert len(hits) == 2
