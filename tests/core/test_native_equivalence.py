"""The loaded model must equal transformers' native model with the task's LoRA merged into the weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jinav3 import TASKS

TEXT = "Berlin is the capital of Germany. Its population is large."


@pytest.mark.parametrize("task", [*TASKS, None])
def test_token_vectors_equal_native_model_with_merged_lora(native_model, tiny_fp32, task):
    backend = tiny_fp32.backend
    ids = backend.encode_ids([TEXT], task, truncate=False)[0]
    ours = backend.token_vectors([ids], [backend._task_id(task)])[0]
    reference = native_model(task)
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids[None])).last_hidden_state[0].numpy()
    np.testing.assert_allclose(ours, expected, atol=2e-5, rtol=1e-4)


def test_mixed_tasks_in_one_batch_equal_separate_runs(tiny_fp32):
    backend = tiny_fp32.backend
    texts = ["short text", "a somewhat longer text about Berlin and its rivers", "北京是首都"]
    tasks = ["retrieval.query", "text-matching", None]
    seqs = [backend.encode_ids([t], task, truncate=False)[0] for t, task in zip(texts, tasks, strict=True)]
    ids = [backend._task_id(t) for t in tasks]
    together = backend.embed_ids(seqs, ids)
    alone = np.stack([backend.embed_ids([s], [i])[0] for s, i in zip(seqs, ids, strict=True)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_every_task_gives_a_different_vector(tiny_fp32):
    vectors = {task: tiny_fp32.embed(["the same text"], task)[0] for task in [*TASKS, None]}
    keys = list(vectors)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not np.allclose(vectors[a], vectors[b], atol=1e-4), (a, b)


def test_retrieval_instructions_are_prepended_exactly(tiny_checkpoint, tiny_fp32):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    backend = tiny_fp32.backend
    for task in TASKS:
        ids = backend.encode_ids(["hello world"], task, truncate=False)[0]
        expected = backend.tokenizer.encode(config["task_instructions"][task] + "hello world").ids
        assert ids.tolist() == expected
    assert config["task_instructions"]["retrieval.query"].startswith("Represent the query")
    plain = backend.encode_ids(["hello world"], None, truncate=False)[0]
    assert plain.tolist() == backend.tokenizer.encode("hello world").ids


def test_embedding_is_masked_mean_of_token_vectors(tiny_fp32):
    backend = tiny_fp32.backend
    ids = backend.encode_ids(["mean pooling check"], "separation", truncate=False)[0]
    tokens = backend.token_vectors([ids], [backend._task_id("separation")])[0]
    raw = tiny_fp32.embed(["mean pooling check"], "separation", normalized=False)[0]
    np.testing.assert_allclose(raw, tokens.mean(0), atol=1e-5)


def test_merged_and_runtime_lora_agree_across_task_switches(tiny_checkpoint, tiny_fp32):
    from jinav3 import Embedder

    runtime = Embedder.local(str(tiny_checkpoint), device="cpu", dtype="float32", merge_lora=False)
    texts = ["switching tasks", "back and forth"]
    for task in ["retrieval.query", None, "classification", "retrieval.query", "text-matching"]:
        np.testing.assert_allclose(tiny_fp32.embed(texts, task), runtime.embed(texts, task), atol=1e-5)
