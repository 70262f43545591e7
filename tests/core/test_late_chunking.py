"""Late chunking: one pass over the document, each chunk = mean of its span's token vectors."""

from __future__ import annotations

import numpy as np
import pytest

from jinav3 import Embedder, InvalidInputError
from jinav3.late_chunking.windows import content_ranges, plan_windows

DOC = (
    "Berlin is the capital and largest city of Germany. Its more than 3.85 million inhabitants make it the "
    "most populous city of the Union. The city is also one of the states of the country."
)
OTHER = "Paris est la capitale de la France. Elle compte plus de deux millions d'habitants."


def expected_raw_chunks(embedder: Embedder, document: str, spans, task="retrieval.passage", special=True):
    """Independent reference for a contiguous partition: one pass, tokens averaged by offsets; the first chunk
    also takes everything before it, the last everything after it (here: exactly the special tokens)."""
    backend = embedder.backend
    prefix = backend.instruction(task)
    enc = backend.tokenizer.encode(prefix + document)
    ids = np.asarray(enc.ids)
    vectors = backend.token_vectors([ids], [backend._task_id(task)])[0]
    out = []
    for i, (s, e) in enumerate(spans):
        rows = [
            j for j, ((a, b), sp) in enumerate(zip(enc.offsets, enc.special_tokens_mask, strict=True))
            if not sp and len(prefix) + s <= max(b - 1, a) < len(prefix) + e
        ]
        if special and i == 0:
            rows = list(range(rows[0])) + rows
        if special and i == len(spans) - 1:
            rows = rows + list(range(rows[-1] + 1, len(ids)))
        out.append(vectors[rows].mean(0))
    return np.stack(out)


@pytest.mark.parametrize("special", [True, False])
def test_chunk_vectors_are_span_means_of_the_full_pass(tiny_embedder, special):
    chunks = tiny_embedder.late_chunk(DOC, normalized=False, include_special_tokens=special)
    spans = [(c.start, c.end) for c in chunks]
    assert [c.text for c in chunks] == [DOC[s:e] for s, e in spans]
    assert len(chunks) == 3 and [c.index for c in chunks] == [0, 1, 2]
    expected = expected_raw_chunks(tiny_embedder, DOC, spans, special=special)
    np.testing.assert_allclose(np.stack([c.embedding for c in chunks]), expected, atol=1e-5)


def test_late_vectors_differ_from_chunks_embedded_alone(tiny_embedder):
    chunks = tiny_embedder.late_chunk(DOC)
    alone = tiny_embedder.embed([c.text for c in chunks], "retrieval.passage")
    for chunk, single in zip(chunks, alone, strict=True):
        assert np.linalg.norm(chunk.embedding) == pytest.approx(1.0, abs=1e-5)
        assert not np.allclose(chunk.embedding, single, atol=1e-3)


def test_documents_never_share_context(tiny_embedder):
    together = tiny_embedder.late_chunk_many([DOC, OTHER])
    alone = [tiny_embedder.late_chunk(DOC), tiny_embedder.late_chunk(OTHER)]
    changed_neighbour = tiny_embedder.late_chunk_many([DOC, OTHER.replace("Paris", "Lyon")])
    for got, ref in zip(together, alone, strict=True):
        np.testing.assert_allclose([c.embedding for c in got], [c.embedding for c in ref], atol=1e-5)
    np.testing.assert_allclose([c.embedding for c in together[0]], [c.embedding for c in changed_neighbour[0]],
                               atol=1e-6)


def test_explicit_spans_and_external_chunk_texts(tiny_embedder):
    spans = [(0, 50), (51, 130), (131, len(DOC))]
    by_spans = tiny_embedder.late_chunk(DOC, spans=spans, dimensions=16)
    by_texts = tiny_embedder.late_chunk(DOC, chunker=lambda text: [text[s:e] for s, e in spans], dimensions=16)
    assert [(c.start, c.end) for c in by_texts] == spans
    np.testing.assert_allclose([c.embedding for c in by_spans], [c.embedding for c in by_texts], atol=1e-6)
    assert by_spans[0].embedding.shape == (16,)


def test_token_chunker_and_paragraph_chunker(tiny_embedder):
    chunks = tiny_embedder.late_chunk(DOC, chunker="tokens", chunk_size=12)
    assert len(chunks) > 3 and chunks[0].start == 0
    paragraphs = tiny_embedder.late_chunk(DOC + "\n\n" + OTHER, chunker="paragraphs")
    assert [c.text for c in paragraphs] == [DOC, OTHER]


def test_overlapping_chunks_share_tokens(tiny_embedder):
    spans = [(0, 80), (40, 120), (100, len(DOC))]
    chunks = tiny_embedder.late_chunk(DOC, spans=spans, normalized=False)
    expected = expected_raw_chunks(tiny_embedder, DOC, spans)
    np.testing.assert_allclose([c.embedding for c in chunks], expected, atol=1e-5)


def test_spans_that_own_no_token_still_get_a_vector(tiny_embedder):
    """A span inside one token pools that token; a span of whitespace pools the next token (the last at the end)."""
    doc = "and document more  "
    backend = tiny_embedder.backend
    tokens = backend.tokenize_document(doc, "retrieval.passage")
    inside = content_ranges(tokens, [(5, 7)])[0]  # "oc" inside "document"
    owner = content_ranges(tokens, [(4, 12)])[0]  # the whole word
    np.testing.assert_array_equal(inside, owner)
    space = content_ranges(tokens, [(3, 4)])[0]  # the blank before "document": a token after "and"
    first_word = content_ranges(tokens, [(0, 3)])[0]
    assert space[1] > space[0] >= first_word[1] and space[1] <= owner[1]
    trailing = content_ranges(tokens, [(17, 19)])[0]  # trailing blanks: the last token
    assert trailing[1] == len(tokens.content)
    chunks = tiny_embedder.late_chunk(doc, spans=[(0, 3), (5, 7), (3, 4), (17, 19)])
    assert np.isfinite(np.stack([c.embedding for c in chunks])).all()


def test_only_empty_or_outside_spans_are_refused(tiny_embedder):
    for spans in ([(3, 3)], [(0, 99)], [(-1, 2)]):
        with pytest.raises(InvalidInputError, match="span 0"):
            tiny_embedder.late_chunk("and document more", spans=spans)


def test_plan_windows_covers_each_token_once_with_context():
    for n, size, overlap in [(10, 20, 4), (100, 30, 10), (1000, 128, 32), (257, 64, 0)]:
        windows = plan_windows(n, size, overlap)
        owned = np.concatenate([np.arange(w.keep_start, w.keep_end) for w in windows])
        np.testing.assert_array_equal(owned, np.arange(n))
        for w in windows:
            assert 0 <= w.start <= w.keep_start <= w.keep_end <= w.end <= n and w.end - w.start <= size
            if w.start > 0:
                assert w.keep_start - w.start >= overlap // 2
            if w.end < n:
                assert w.end - w.keep_end >= overlap // 2 - 1


def test_long_documents_use_macro_windows(tiny_embedder):
    long_doc = " ".join([DOC] * 12)
    backend = tiny_embedder.backend
    n_tokens = backend.tokenize_document(long_doc, "retrieval.passage").length
    assert n_tokens > 300
    full = tiny_embedder.late_chunk(long_doc, normalized=False)
    same = tiny_embedder.late_chunk(long_doc, normalized=False, window=n_tokens + 5)
    windowed = tiny_embedder.late_chunk(long_doc, normalized=False, window=96, overlap=32)
    np.testing.assert_allclose([c.embedding for c in full], [c.embedding for c in same], atol=1e-5)
    assert len(windowed) == len(full) == 36
    assert np.isfinite(np.stack([c.embedding for c in windowed])).all()
    # the first chunk lies inside the first window's kept part: its vector equals a pass over that window alone
    doc = backend.tokenize_document(long_doc, "retrieval.passage")
    first_window = np.concatenate([doc.head, doc.content[: 96 - len(doc.head) - len(doc.tail)], doc.tail])
    vectors = backend.token_vectors([first_window], [backend._task_id("retrieval.passage")])[0]
    lo, hi = content_ranges(doc, [(windowed[0].start, windowed[0].end)])[0] + len(doc.head)
    np.testing.assert_allclose(windowed[0].embedding, vectors[:hi].mean(0), atol=1e-5)  # head + its own tokens
    assert lo == len(doc.head)
    assert not np.allclose(windowed[-1].embedding, full[-1].embedding, atol=1e-4)


def test_results_do_not_depend_on_batching(tiny_checkpoint, tiny_embedder):
    small = Embedder.local(str(tiny_checkpoint), device="cpu", token_budget=24, max_batch=2)
    texts = [DOC, OTHER, "short", "東京は日本の首都です。", DOC[:40]]
    np.testing.assert_allclose(small.embed(texts), tiny_embedder.embed(texts), atol=1e-5)
    a = small.late_chunk_many([DOC, OTHER])
    b = tiny_embedder.late_chunk_many([DOC, OTHER])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose([c.embedding for c in x], [c.embedding for c in y], atol=1e-5)


async def test_async_equals_sync(tiny_embedder):
    np.testing.assert_allclose(await tiny_embedder.aembed_query("where?"), tiny_embedder.embed_query("where?"))
    docs = await tiny_embedder.aembed_documents([DOC, OTHER], dimensions=8)
    np.testing.assert_allclose(docs, tiny_embedder.embed_documents([DOC, OTHER], dimensions=8))
    got = await tiny_embedder.alate_chunk(DOC)
    np.testing.assert_allclose([c.embedding for c in got], [c.embedding for c in tiny_embedder.late_chunk(DOC)])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.late_chunk("   "), "empty document"),
        (lambda e: e.late_chunk(42), "document must be a string"),
        (lambda e: e.late_chunk(DOC, task="retrieval"), "unknown task"),
        (lambda e: e.late_chunk(DOC, chunker="words"), "unknown chunker"),
        (lambda e: e.late_chunk_many([DOC], spans=[[(0, 5)], [(0, 5)]]), "2 span lists for 1 documents"),
        (lambda e: e.late_chunk(DOC, window=4), "window"),
        (lambda e: e.late_chunk(DOC, dimensions=0), "dimensions"),
    ],
)
def test_bad_late_chunking_input(tiny_embedder, call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(tiny_embedder)
