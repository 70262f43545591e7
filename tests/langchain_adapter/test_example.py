"""examples/langchain_rag.py runs end to end (split, store, retrieve) on the tiny checkpoint via --model."""

from __future__ import annotations


def test_rag_example_runs_on_the_tiny_checkpoint(tiny_model, capsys, load_example):
    example = load_example("langchain_rag")
    assert example.main(["--model", tiny_model, "--dimensions", "16", "--top", "2", "Where is Berlin?"]) == 0
    out = capsys.readouterr().out
    assert "late-chunked chunks of 4 documents with" in out and "(16 dimensions)" in out
    assert str(tiny_model) not in out  # the model's name, not its folder's path
    hits = [line for line in out.splitlines() if line.startswith("  ") and ".txt[" in line]
    assert len(hits) == 2
