"""``usage=TokenUsage()``: the local backend counts the token ids it feeds the model (instruction and special
tokens included, every macro window in full), independently recomputed here with the tokenizer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import TASKS
from jinav3.usage import TokenUsage

words = st.lists(st.sampled_from(["Berlin", "wall", "1989", "Ja.", "Yes.", "| a | b |", "über", "\n"]), min_size=1,
                 max_size=30).map(" ".join)


def fed(embedder, task, text: str) -> int:
    """Tokens of ``instruction + text`` with the tokenizer's special tokens: one pass of the model."""
    return len(embedder.tokenizer.encode(embedder.backend.instruction(task) + text).ids)


@settings(max_examples=15, deadline=None)
@given(texts=st.lists(words, min_size=1, max_size=4), task=st.sampled_from([*TASKS, None]))
def test_plain_embedding_counts_what_the_model_reads(tiny_fp32, texts, task):
    usage = TokenUsage()
    tiny_fp32.embed(texts, task, usage=usage)
    assert usage.as_openai() == {"prompt_tokens": sum(fed(tiny_fp32, task, t) for t in texts),
                                 "total_tokens": sum(fed(tiny_fp32, task, t) for t in texts)}


@settings(max_examples=15, deadline=None)
@given(documents=st.lists(words.filter(str.strip), min_size=1, max_size=3))  # a blank document is refused
def test_late_chunking_counts_each_document_once_when_it_fits(tiny_fp32, documents):
    usage = TokenUsage()
    tiny_fp32.late_chunk_many(documents, "sentences", usage=usage)
    assert usage.tokens == sum(fed(tiny_fp32, "retrieval.passage", doc) for doc in documents)


async def test_windows_count_their_overlap_and_async_counts_the_same(tiny_fp32):
    document = " ".join(["Berlin is the capital of Germany. The wall fell in 1989."] * 30)
    once, windowed, awaited = TokenUsage(), TokenUsage(), TokenUsage()
    tiny_fp32.late_chunk(document, usage=once)
    tiny_fp32.late_chunk(document, usage=windowed, window=64, overlap=16)
    await tiny_fp32.alate_chunk(document, usage=awaited, window=64, overlap=16)
    assert once.tokens == fed(tiny_fp32, "retrieval.passage", document)
    assert windowed.tokens > once.tokens and awaited.tokens == windowed.tokens  # shared tokens are read twice
    both = TokenUsage()
    await tiny_fp32.aembed(["one", "two"], usage=both)
    assert both.tokens == fed(tiny_fp32, "retrieval.passage", "one") + fed(tiny_fp32, "retrieval.passage", "two")


def test_an_unreported_count_is_incomplete_not_wrong():
    usage = TokenUsage()
    usage.add(5)
    usage.add(None)  # an API answer without "usage"
    usage.add(3)
    assert usage.tokens == 8 and not usage.complete and usage.as_openai() is None
