"""The default path, in the precision this CPU class gets (bf16 where it is native, fp32 elsewhere): within that
precision's tolerance of fp32, and bit-identical whatever a row is batched with. ``scripts/test.sh`` runs this
module a second time as the other CPU class, so one machine checks both choices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3 import TASKS
from jinav3.runtime.hardware import auto_dtype, cpu_features
from jinav3.testing import same_vectors

pytestmark = pytest.mark.cpu_class

#: Largest 1 - cos between the default path and fp32, per precision: fp32 is the same computation (bit for bit);
#: bf16 measured at most 1.2e-4 on MiniLM and the tiny checkpoint (docs/concepts.md, "Precision").
TOLERANCE = {torch.float32: 0.0, torch.bfloat16: 1e-3}
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
words = st.sampled_from(["Berlin", "wall", "Kyoto", "temple", "río", "東京", "!", "1989", "and", "the", "\n", "😀"])
texts = st.lists(words, min_size=1, max_size=60).map(" ".join)


def assert_within_precision(got: np.ndarray, reference: np.ndarray, dtype: torch.dtype) -> None:
    if TOLERANCE[dtype] == 0.0:
        assert same_vectors(got, reference)
        return
    cos = np.sum(got * reference, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert (1 - cos).max() <= TOLERANCE[dtype], (1 - cos).max()


def test_the_default_precision_is_the_cpu_classes(tiny_embedder, minilm_embedder):
    chosen = auto_dtype(torch.device("cpu"))
    assert chosen == (torch.bfloat16 if cpu_features().native_bf16 else torch.float32)
    for embedder in (tiny_embedder, minilm_embedder):
        assert embedder.backend.dtype == chosen
        assert embedder.backend.unpadded  # what makes batch-mates irrelevant, in every precision
        assert embedder.backend.describe()["dtype"] == str(chosen).removeprefix("torch.")


@SETTINGS
@given(batch=st.lists(texts, min_size=1, max_size=6), task=st.sampled_from([*TASKS, None]))
def test_default_vectors_are_fp32_ones_within_the_precisions_tolerance(tiny_embedder, tiny_fp32, batch, task):
    got = tiny_embedder.embed(batch, task)
    assert_within_precision(got, tiny_fp32.embed(batch, task), tiny_embedder.backend.dtype)


@SETTINGS
@given(sentences=st.lists(texts.map(lambda t: t + "."), min_size=1, max_size=12))
def test_default_late_chunks_on_real_weights_within_the_precisions_tolerance(minilm_embedder, minilm_fp32,
                                                                              sentences):
    document = " ".join(sentences)
    got = minilm_embedder.late_chunk(document, "sentences")
    reference = minilm_fp32.late_chunk(document, "sentences")
    assert [(c.start, c.end) for c in got] == [(c.start, c.end) for c in reference]
    assert_within_precision(np.stack([c.embedding for c in got]), np.stack([c.embedding for c in reference]),
                            minilm_embedder.backend.dtype)


@SETTINGS
@given(items=st.lists(st.tuples(texts, st.sampled_from([*TASKS, None])), min_size=2, max_size=8))
def test_default_rows_do_not_depend_on_batch_mates(tiny_embedder, items):
    """Mixed tasks and lengths in one call (as the server's micro-batcher sends them), or each text alone."""
    backend = tiny_embedder.backend
    seqs = [backend.encode_ids([text], task, truncate=False)[0] for text, task in items]
    ids = [backend._task_id(task) for _, task in items]
    together = backend.embed_ids(seqs, ids)
    for row, (seq, task_id) in enumerate(zip(seqs, ids, strict=True)):
        assert same_vectors(backend.embed_ids([seq], [task_id])[0], together[row])
