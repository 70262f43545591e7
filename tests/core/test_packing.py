"""Unpadded (packed) batches — the default on every device — equal padded ones (fp32, to rounding), varlen
attention equals per-sequence attention, and span pooling on the device equals the host's pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch.nn import functional as F

from jinav3 import Embedder, InvalidInputError
from jinav3.late_chunking import windows as late
from jinav3.late_chunking.pooling_torch import TorchPoolingStream
from jinav3.model.packing import PACKED_ATTENTION, varlen_attention

words = st.sampled_from(["Berlin", "wall", "Kyoto", "temple", "río", "東京", "!", "1989", "and", "the", "\n"])
texts = st.lists(words, min_size=1, max_size=40).map(" ".join)


@pytest.fixture(scope="module")
def tiny_unpadded(tiny_checkpoint) -> Embedder:
    return Embedder.local(str(tiny_checkpoint), device="cpu", dtype="float32", unpadded=True, device_pooling=True)


@pytest.fixture(scope="module")
def tiny_padded(tiny_checkpoint) -> Embedder:
    return Embedder.local(str(tiny_checkpoint), device="cpu", dtype="float32", unpadded=False)


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6), heads=st.integers(1, 3),
       dim=st.sampled_from([4, 8]), nested=st.booleans(), seed=st.integers(0, 2**16))
def test_varlen_attention_is_attention_per_sequence(lengths, heads, dim, nested, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(sum(lengths), heads, dim, generator=gen) for _ in range(3))
    cu = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32)
    got = varlen_attention(q, k, v, cu, None, nested=nested)
    # reference: one padded batch with a key mask
    longest, n = max(lengths), len(lengths)
    pad = [torch.zeros(n, heads, longest, dim) for _ in range(3)]
    mask = torch.zeros(n, 1, 1, longest, dtype=torch.bool)
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)):
        for p, t in zip(pad, (q, k, v), strict=True):
            p[i, :, : b - a] = t[a:b].transpose(0, 1)
        mask[i, ..., : b - a] = True
    ref = F.scaled_dot_product_attention(*pad, attn_mask=mask)
    expected = torch.cat([ref[i, :, :n_i].transpose(0, 1) for i, n_i in enumerate(lengths)])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(batch=st.lists(texts, min_size=1, max_size=6),
       task=st.sampled_from(["retrieval.query", "retrieval.passage", "text-matching", None]))
def test_unpadded_embeddings_equal_padded(tiny_padded, tiny_unpadded, batch, task):
    assert tiny_unpadded.backend.attn_implementation == PACKED_ATTENTION
    assert not tiny_padded.backend.unpadded
    np.testing.assert_allclose(tiny_unpadded.embed(batch, task=task), tiny_padded.embed(batch, task=task),
                               rtol=1e-5, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(batch=st.lists(texts, min_size=2, max_size=5), tasks=st.lists(st.sampled_from([-1, 0, 1, 4]), min_size=5,
                                                                     max_size=5))
def test_unpadded_mixed_task_batches(tiny_padded, tiny_unpadded, batch, tasks):
    """A batch that mixes tasks runs one packed row per task; every row equals the padded path's."""
    tasks = tasks[: len(batch)]
    ids = tiny_padded.backend.encode_ids(batch, None, truncate=False)
    np.testing.assert_allclose(tiny_unpadded.backend.embed_ids(ids, tasks), tiny_padded.backend.embed_ids(ids, tasks),
                               rtol=1e-5, atol=1e-5)


def test_unpadded_plain_encoder(minilm_dir):
    """Learned absolute positions (BERT) restart per packed sequence too."""
    batch = ["short", "a somewhat longer sentence about the Berlin wall and the year 1989", "Kyoto " * 30]
    padded = Embedder.local(str(minilm_dir), device="cpu", dtype="float32", unpadded=False).embed(batch)
    unpadded = Embedder.local(str(minilm_dir), device="cpu", dtype="float32").embed(batch)
    np.testing.assert_allclose(unpadded, padded, rtol=1e-5, atol=1e-5)


def test_unpadded_needs_boundary_aware_attention(tiny_checkpoint):
    with pytest.raises(InvalidInputError, match="unpadded batches need attention"):
        Embedder.local(str(tiny_checkpoint), device="cpu", unpadded=True, attn_implementation="sdpa")
    # naming such an attention without asking for unpadded batches gets padded ones
    assert not Embedder.local(str(tiny_checkpoint), device="cpu", attn_implementation="eager").backend.unpadded
    assert Embedder.local(str(tiny_checkpoint), device="cpu").backend.unpadded


def fake_document(n_head: int, n_content: int, n_tail: int) -> late.TokenizedDocument:
    return late.TokenizedDocument(head=np.arange(n_head), content=np.arange(n_content), tail=np.arange(n_tail),
                                  content_first_char=np.arange(n_content), content_last_char=np.arange(n_content))


@st.composite
def pooling_cases(draw: st.DrawFn, max_content: int = 60) -> tuple:
    """Token vectors, a document shape, a pooling plan, and the cuts at which a stream is fed its blocks."""
    n_head, n_content, n_tail = draw(st.integers(1, 4)), draw(st.integers(1, max_content)), draw(st.integers(0, 2))
    n = n_head + n_content + n_tail
    vectors = draw(arrays(np.float32, (n, draw(st.integers(1, 6))), elements=st.floats(-1e3, 1e3, width=32)))
    bounds = draw(st.lists(st.tuples(st.integers(0, n_content - 1), st.integers(1, n_content)).map(
        lambda t: (min(t[0], t[1] - 1) + n_head, max(t[1], t[0] + 1) + n_head)), min_size=1, max_size=10))
    k = len(bounds)
    head = np.asarray(draw(st.lists(st.booleans(), min_size=k, max_size=k)))
    tail = np.asarray(draw(st.lists(st.booleans(), min_size=k, max_size=k)))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))
    plan = late.PoolingPlan(np.asarray(bounds, dtype=np.int64), head, tail)
    return vectors, fake_document(n_head, n_content, n_tail), plan, cuts


def streamed(stream: late.PoolingStream, vectors: np.ndarray, cuts: list[int], as_tensor: bool) -> np.ndarray:
    for a, b in zip([0, *cuts], [*cuts, len(vectors)], strict=True):
        stream.feed(torch.from_numpy(vectors[a:b]) if as_tensor else vectors[a:b])
    return stream.result()


@settings(max_examples=60, deadline=None)
@given(case=pooling_cases())
def test_pooling_stream_equals_whole_document_pooling_bit_for_bit(case):
    """Fed in any blocks, the stream gives exactly what pooling all token vectors at once gives."""
    vectors, doc, plan, cuts = case
    expected = late.pool(vectors, doc, plan)
    np.testing.assert_array_equal(streamed(late.PoolingStream(doc, plan, vectors.shape[1]), vectors, cuts, False),
                                  expected)
    device = TorchPoolingStream(doc, plan, vectors.shape[1], torch.device("cpu"))
    np.testing.assert_allclose(streamed(device, vectors, cuts, True), expected, rtol=1e-6, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(case=pooling_cases(max_content=30))
def test_pooling_stream_is_the_mean_of_its_tokens(case):
    vectors, doc, plan, cuts = case
    n, n_head, n_tail = len(vectors), len(doc.head), len(doc.tail)
    got = streamed(TorchPoolingStream(doc, plan, vectors.shape[1], torch.device("cpu")), vectors, cuts, True)
    for k, (lo, hi) in enumerate(plan.ranges):
        rows = list(range(lo, hi)) + (list(range(n_head)) if plan.with_head[k] else []) + (
            list(range(n - n_tail, n)) if plan.with_tail[k] else [])
        np.testing.assert_allclose(got[k], vectors[rows].astype(np.float64).mean(0), rtol=1e-5, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(n_content=st.integers(1, 200), size=st.integers(8, 64), n_head=st.integers(1, 5), n_tail=st.integers(0, 2),
       data=st.data())
def test_stitching_takes_every_document_position_once_in_order(n_content, size, n_head, n_tail, data):
    """Stitched from the positions each window's input holds, the document is every position once, in order."""
    doc = fake_document(n_head, n_content, n_tail)
    plan = late.plan_windows(n_content, size, data.draw(st.integers(0, size - 1)))
    head, tail = np.arange(n_head), np.arange(n_tail) + n_head + n_content
    positions = [np.concatenate([head, np.arange(w.start, w.end) + n_head, tail]) for w in plan]
    np.testing.assert_array_equal(late.stitch(doc, plan, positions), np.arange(doc.length))


@settings(max_examples=15, deadline=None)
@given(words_list=st.lists(texts, min_size=1, max_size=3), chunk=st.integers(2, 12), window=st.integers(40, 96))
def test_late_chunking_with_device_pooling_equals_host(tiny_fp32, tiny_unpadded, words_list, chunk, window):
    docs = [" ".join([w] * 4) + " end." for w in words_list]
    kwargs = {"chunker": "tokens", "chunk_size": chunk, "window": window}
    ours = tiny_unpadded.late_chunk_many(docs, **kwargs)
    ref = tiny_fp32.late_chunk_many(docs, **kwargs)
    for a, b in zip(ours, ref, strict=True):
        assert [(c.start, c.end) for c in a] == [(c.start, c.end) for c in b]
        np.testing.assert_allclose(np.stack([c.embedding for c in a]), np.stack([c.embedding for c in b]),
                                   rtol=1e-5, atol=1e-5)
