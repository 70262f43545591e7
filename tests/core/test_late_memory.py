"""Late chunking holds the token vectors of one group of windows at a time, never the whole document's, and keeps
what it holds per token small; vectors stay exactly what pooling the whole document at once gives."""

from __future__ import annotations

import tracemalloc

import numpy as np

from jinav3.backends import local_base

SENTENCE = "Berlin is the capital of Germany. It has a famous wall. Kyoto has many temples and gardens. "


def test_memory_is_bounded_by_the_group_not_the_document(tiny_fp32, monkeypatch):
    monkeypatch.setattr(local_base, "_LATE_GROUP_TOKENS", 512)
    prepared = tiny_fp32.prepare_late_chunks([SENTENCE * 150])
    n_tokens, width = prepared[0].tokens.length, tiny_fp32.dimensions
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        chunks = tiny_fp32.late_chunk_prepared(prepared, window=128, show_progress=False)[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole_document = n_tokens * width * (4 + 8)  # its token vectors (fp32) and their float64 prefix sums
    chunk_vectors = len(chunks) * width * (4 + 8)
    assert n_tokens > 12 * 512
    assert peak < chunk_vectors + whole_document / 5, (peak, whole_document)


def test_streamed_vectors_equal_whole_document_pooling(tiny_fp32, monkeypatch):
    """Bit for bit: the same document with one group for everything and with groups of a few windows."""
    document = SENTENCE * 40
    whole = tiny_fp32.late_chunk(document, window=64, show_progress=False)
    monkeypatch.setattr(local_base, "_LATE_GROUP_TOKENS", 100)
    grouped = tiny_fp32.late_chunk(document, window=64, show_progress=False)
    assert [(c.start, c.end) for c in grouped] == [(c.start, c.end) for c in whole]
    np.testing.assert_array_equal(np.stack([c.embedding for c in grouped]), np.stack([c.embedding for c in whole]))


def test_a_tokenised_document_holds_twelve_bytes_a_token(tiny_fp32):
    doc = tiny_fp32.backend.tokenize_document(SENTENCE * 50, "retrieval.passage")
    assert doc.content.itemsize + doc.content_first_char.itemsize + doc.content_last_char.itemsize == 12
    ids = tiny_fp32.tokenizer.encode(SENTENCE * 50).ids
    np.testing.assert_array_equal(np.concatenate([doc.head, doc.content, doc.tail])[-len(doc.tail) - 5 :],
                                  np.asarray(ids[-len(doc.tail) - 5 :]))
