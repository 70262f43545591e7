"""Differential property tests: ``late_chunk`` against a brute-force pooling written plainly here.

The reference tokenises ``instruction + document``, runs transformers' native model (task LoRA merged by hand)
once over the whole sequence, and averages each chunk's tokens under the documented rule:
own tokens (last character inside the span); else the tokens overlapping the span; else the next token (the
last one at the end); the chunk(s) starting first add ``<s>`` + instruction, the chunk(s) ending last add ``</s>``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import TASKS, Embedder

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

PIECES = [
    "Berlin", "is", "the", "capital", "of", "Germany.", "Paris", "est", "la", "capitale", "東京は日本の首都です。",
    "北京", "！", "Москва", "—", "столица", "😀", "👩‍🔬", "𝔘𝔫𝔦", "e\u0301", "n\u0303o", "ﬁne", "3.85", "?", "!",
    "https://x.org/search?q=berlin&lang=de", "x != y", "Yahoo!Finance", "dog.",
]
SEPARATORS = [" ", "  ", "\n", "\r\n", "\r\n\r\n", "\t", " \n ", ""]


@st.composite
def documents(draw: st.DrawFn, max_pieces: int = 40) -> str:
    words = draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=max_pieces))
    parts = [draw(st.sampled_from(SEPARATORS[:3]))]
    for word in words:
        parts += [word, draw(st.sampled_from(SEPARATORS))]
    return "".join(parts)


@st.composite
def document_and_spans(draw: st.DrawFn, max_pieces: int = 40) -> tuple[str, list[tuple[int, int]]]:
    """A document and 1-6 spans in any order: gaps, overlaps, nesting, spans inside tokens or in whitespace."""
    doc = draw(documents(max_pieces).filter(lambda d: d.strip()))
    bound = st.integers(0, len(doc))
    spans = draw(st.lists(st.tuples(bound, bound).filter(lambda p: p[0] != p[1]), min_size=1, max_size=6))
    return doc, [(min(p), max(p)) for p in spans]


def reference_rows(offsets, special, prefix: int, spans, include_special: bool) -> list[list[int]]:
    """Token indices each span averages, computed token by token."""
    content = [j for j, ((a, b), sp) in enumerate(zip(offsets, special, strict=True))
               if not sp and max(b - 1, a) >= prefix]
    first_char = {j: max(offsets[j][0] - prefix, 0) for j in content}
    last_char = {j: max(offsets[j][1] - 1, offsets[j][0]) - prefix for j in content}
    head = list(range(content[0]))
    tail = list(range(content[-1] + 1, len(offsets)))
    first_start = min(s for s, _ in spans)
    last_end = max(e for _, e in spans)
    rows = []
    for s, e in spans:
        chosen = [j for j in content if s <= last_char[j] < e]
        if not chosen:
            chosen = [j for j in content if first_char[j] < e and last_char[j] >= s]
            if not chosen:
                later = [j for j in content if last_char[j] >= e]
                chosen = [later[0] if later else content[-1]]
            shared = {last_char[j] for j in chosen}  # pieces of one character stay together
            chosen = [j for j in content if last_char[j] in shared]
        if include_special and s == first_start:
            chosen = head + chosen
        if include_special and e == last_end:
            chosen = chosen + tail
        rows.append(chosen)
    return rows


def reference_vectors(embedder: Embedder, model, document: str, spans, task, include_special: bool) -> np.ndarray:
    backend = embedder.backend
    prefix = backend.instruction(task)
    enc = backend.tokenizer.encode(prefix + document)
    with torch.no_grad():
        tokens = model(input_ids=torch.tensor([enc.ids])).last_hidden_state[0].double().numpy()
    rows = reference_rows(enc.offsets, enc.special_tokens_mask, len(prefix), spans, include_special)
    return np.stack([tokens[r].mean(0) for r in rows])


@SETTINGS
@given(case=document_and_spans(), task=st.sampled_from([*TASKS, None]), special=st.booleans())
def test_late_chunks_equal_brute_force_pooling(tiny_fp32, native_model, case, task, special):
    document, spans = case
    chunks = tiny_fp32.late_chunk(document, spans=spans, task=task, normalized=False,
                                      include_special_tokens=special)
    expected = reference_vectors(tiny_fp32, native_model(task), document, spans, task, special)
    np.testing.assert_allclose([c.embedding for c in chunks], expected, atol=3e-5, rtol=1e-4)
    assert [(c.start, c.end, c.text) for c in chunks] == [(s, e, document[s:e]) for s, e in spans]


@SETTINGS
@given(case=document_and_spans(), data=st.data())
def test_a_span_does_not_depend_on_order_or_company(tiny_embedder, case, data):
    """A span's vector is the same listed alone in the middle of others or shuffled, as long as it keeps its
    first/last status (special tokens off: then no span has one)."""
    document, spans = case
    order = data.draw(st.permutations(range(len(spans))))
    listed = tiny_embedder.late_chunk(document, spans=spans, normalized=False, include_special_tokens=False)
    shuffled = tiny_embedder.late_chunk(document, spans=[spans[i] for i in order], normalized=False,
                                        include_special_tokens=False)
    alone = [tiny_embedder.late_chunk(document, spans=[span], normalized=False, include_special_tokens=False)[0]
             for span in spans]
    for k, i in enumerate(order):
        np.testing.assert_allclose(shuffled[k].embedding, listed[i].embedding, atol=1e-6)
    np.testing.assert_allclose([c.embedding for c in alone], [c.embedding for c in listed], atol=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=document_and_spans(max_pieces=120), window=st.integers(16, 80), overlap=st.integers(0, 40),
       task=st.sampled_from([*TASKS, None]))
def test_macro_windows_pool_each_token_from_its_owning_window(tiny_fp32, native_model, case, window, overlap,
                                                              task):
    """Long documents: every token's vector comes from the one window that owns it, run on its own."""
    from jinav3.late_chunking.windows import plan_windows

    document, spans = case
    backend = tiny_fp32.backend
    doc = backend.tokenize_document(document, task)
    content_window = window - len(doc.head) - len(doc.tail)
    if content_window < 8:
        with pytest.raises(Exception, match="window"):
            tiny_fp32.late_chunk(document, spans=spans, task=task, window=window, overlap=overlap)
        return
    overlap = min(overlap, content_window - 1)
    chunks = tiny_fp32.late_chunk(document, spans=spans, task=task, normalized=False, window=window,
                                      overlap=overlap)
    model = native_model(task)
    per_token = np.empty((doc.length, tiny_fp32.dimensions))
    h = len(doc.head)
    windows = plan_windows(len(doc.content), content_window, overlap)
    for k, w in enumerate(windows):
        ids = np.concatenate([doc.head, doc.content[w.start : w.end], doc.tail])
        with torch.no_grad():
            out = model(input_ids=torch.from_numpy(ids[None])).last_hidden_state[0].double().numpy()
        per_token[h + w.keep_start : h + w.keep_end] = out[h + w.keep_start - w.start : h + w.keep_end - w.start]
        if k == 0:
            per_token[:h] = out[:h]
        if k == len(windows) - 1:
            per_token[h + len(doc.content) :] = out[len(ids) - len(doc.tail) :]
    enc = backend.tokenizer.encode(backend.instruction(task) + document)
    rows = reference_rows(enc.offsets, enc.special_tokens_mask, len(backend.instruction(task)), spans, True)
    expected = np.stack([per_token[r].mean(0) for r in rows])
    np.testing.assert_allclose([c.embedding for c in chunks], expected, atol=3e-5, rtol=1e-4)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=document_and_spans(max_pieces=30))
def test_real_wordpiece_model_matches_brute_force(minilm_fp32, case):
    """The real MiniLM (WordPiece, [CLS]/[SEP], no tasks) against transformers' AutoModel on the same weights."""
    from transformers import AutoModel

    document, spans = case
    model = getattr(test_real_wordpiece_model_matches_brute_force, "_model", None)
    if model is None:
        model = AutoModel.from_pretrained(str(minilm_fp32.backend.model_name)).eval()
        test_real_wordpiece_model_matches_brute_force._model = model
    chunks = minilm_fp32.late_chunk(document, spans=spans, normalized=False)
    expected = reference_vectors(minilm_fp32, model, document, spans, None, True)
    np.testing.assert_allclose([c.embedding for c in chunks], expected, atol=3e-5, rtol=1e-4)


TEXTS = st.text(alphabet=st.sampled_from(list("abcdefgh BerlinParis東京😀\n")), min_size=1, max_size=60)


#: (dtype, attn_implementation): None = the default, unpadded batches; "sdpa"/"eager" = padded batches.
VARIANTS = [("float32", None), ("bfloat16", None), ("int8", None), ("float32", "sdpa"), ("bfloat16", "eager"),
            ("bfloat16", "sdpa")]
#: Padded batches: the largest 1 - cos between a row alone and in a batch, per dtype (fp32: its cos rounding;
#: bf16: ~7x the 1.5e-5 measured on MiniLM; see
#: docs/concepts.md "Batch-mates"). Unpadded batches (the default) are bit-identical.
PADDED_BOUND = {"float32": 1e-6, "bfloat16": 1e-4}


@pytest.fixture(scope="module")
def variants(tiny_checkpoint):
    return {v: Embedder.local(str(tiny_checkpoint), device="cpu", dtype=v[0], attn_implementation=v[1])
            for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.tuples(TEXTS, st.sampled_from([*TASKS, None])), min_size=2, max_size=8))
def test_a_rows_vector_does_not_depend_on_its_batch_mates(variants, variant, items):
    """Mixed-task batches (as the server's micro-batcher builds them) give every row the vector it gets alone.
    Default (unpadded) batches: bit for bit, in fp32, bf16 and int8 — no padding enters any kernel, and every
    other operation is per token. Padded batches (an attention that cannot read sequence boundaries): padding
    changes the attention kernel's rounding, within the documented bound."""
    backend = variants[variant].backend
    assert backend.unpadded is (variant[1] is None)
    seqs = [backend.encode_ids([text], task, truncate=False)[0] for text, task in items]
    ids = [backend._task_id(task) for _, task in items]
    together = backend.embed_ids(seqs, ids)
    alone = np.stack([backend.embed_ids([s], [i])[0] for s, i in zip(seqs, ids, strict=True)])
    if backend.unpadded:
        np.testing.assert_array_equal(together, alone)
    else:
        cos = (together * alone).sum(1) / np.linalg.norm(together, axis=1) / np.linalg.norm(alone, axis=1)
        assert (1 - cos).max() <= PADDED_BOUND[variant[0]]
