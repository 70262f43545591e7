"""The Embedder's public contract: roles, input checks, truncation, loading errors."""

from __future__ import annotations

import numpy as np
import pytest

from jinav3 import TASKS, Embedder, InputTooLongError, InvalidInputError, ModelLoadError, RoleTasks


def test_roles_route_queries_and_documents(tiny_embedder):
    q = tiny_embedder.embed_query("capital of Germany?")
    np.testing.assert_allclose(q, tiny_embedder.embed(["capital of Germany?"], "retrieval.query")[0])
    d = tiny_embedder.embed_documents(["Berlin is the capital."])
    np.testing.assert_allclose(d, tiny_embedder.embed(["Berlin is the capital."], "retrieval.passage"))
    assert not np.allclose(q, tiny_embedder.embed_documents(["capital of Germany?"])[0], atol=1e-4)


def test_roles_are_overridable(tiny_checkpoint):
    emb = Embedder.local(str(tiny_checkpoint), device="cpu", query_task="text-matching", document_task="text-matching")
    assert emb.roles == RoleTasks("text-matching", "text-matching")
    np.testing.assert_allclose(emb.embed_query("same"), emb.embed_documents(["same"])[0], atol=1e-6)
    with pytest.raises(InvalidInputError, match="valid tasks are"):
        Embedder.local(str(tiny_checkpoint), query_task="query")


def test_unknown_task_lists_the_valid_ones(tiny_embedder):
    with pytest.raises(ValueError, match="unknown task 'retrieval'") as info:
        tiny_embedder.embed(["x"], "retrieval")
    for task in TASKS:
        assert repr(task) in str(info.value)


def test_outputs_keep_input_order_and_shape(tiny_embedder):
    texts = ["b" * 50, "a", "c c c", ""]
    out = tiny_embedder.embed(texts, "separation")
    assert out.shape == (4, tiny_embedder.dimensions) and out.dtype == np.float32
    for i, text in enumerate(texts):
        np.testing.assert_allclose(out[i], tiny_embedder.embed([text], "separation")[0], atol=1e-5)
    assert tiny_embedder.embed([], "separation").shape == (0, tiny_embedder.dimensions)


def test_too_long_input_raises_or_truncates(tiny_checkpoint):
    emb = Embedder.local(str(tiny_checkpoint), device="cpu", max_length=16)
    long_text = "Berlin is the capital and largest city of Germany " * 4
    with pytest.raises(InputTooLongError, match="truncate=True"):
        emb.embed([long_text], "retrieval.passage")
    cut = emb.embed([long_text], "retrieval.passage", truncate=True)
    ids = emb.backend.encode_ids([long_text], "retrieval.passage", truncate=True)[0]
    assert len(ids) == 16 and ids[-1] == 2  # still ends with </s>
    assert cut.shape == (1, emb.dimensions)


@pytest.mark.parametrize(
    ("texts", "message"),
    [("just one string", "list of strings"), (["ok", None], r"texts\[1\] must be a string"), ([b"bytes"], "string")],
)
def test_bad_texts(tiny_embedder, texts, message):
    with pytest.raises(InvalidInputError, match=message):
        tiny_embedder.embed(texts)


def test_query_must_be_a_string(tiny_embedder):
    with pytest.raises(InvalidInputError, match="query must be a string"):
        tiny_embedder.embed_query(["a list"])


def test_loading_errors_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Embedder.local(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        Embedder.local(str(tmp_path))
    with pytest.raises(InvalidInputError, match="unknown backend"):
        Embedder.create("grpc")


def test_bad_dtype_is_rejected(tiny_checkpoint):
    with pytest.raises(InvalidInputError, match="unknown dtype"):
        Embedder.local(str(tiny_checkpoint), dtype="int3")


def test_bfloat16_mode_stays_close_to_float32(tiny_checkpoint, tiny_embedder):
    bf16 = Embedder.local(str(tiny_checkpoint), device="cpu", dtype="bfloat16")
    texts = ["Berlin is the capital of Germany.", "東京は日本の首都です。"]
    cos = np.sum(bf16.embed(texts) * tiny_embedder.embed(texts), axis=1)
    assert (cos > 0.99).all()


def test_shared_returns_one_instance_per_setting(tiny_checkpoint):
    a = Embedder.shared("local", str(tiny_checkpoint), device="cpu")
    assert Embedder.shared("local", str(tiny_checkpoint), device="cpu") is a
    assert Embedder.shared("local", str(tiny_checkpoint), device="cpu", max_length=64) is not a
    assert "local" in repr(a) and a.describe()["query_task"] == "retrieval.query"


def test_token_budget_batches_bound_padding_and_budget():
    from jinav3.model.batching import token_budget_batches

    lengths = [16, 500, 480, 300, 16, 4000, 120, 130, 290, 16]
    batches = token_budget_batches(lengths, max_tokens=1024, max_batch=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 3 and (len(batch) == 1 or len(batch) * longest <= 1024)
        assert all(lengths[i] >= 0.9 * longest for i in batch)


def test_backend_options_name_misplaced_and_unknown_settings(tiny_checkpoint):
    from jinav3.runtime.settings import backend_options

    assert backend_options("local", {"device": "cpu", "dtype": None}) == {"device": "cpu"}
    with pytest.raises(InvalidInputError, match=r"base_url do not apply to backend='local'.*options of backend='api'"):
        Embedder.create("local", str(tiny_checkpoint), base_url="http://127.0.0.1:1")
    with pytest.raises(InvalidInputError, match="devise is not an option of any backend"):
        Embedder.create("local", str(tiny_checkpoint), devise="cpu")
