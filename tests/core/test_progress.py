"""Progress: on by default only on a terminal (and only for work that lasts), always with show_progress=True,
never with show_progress=False; bars go to stderr, never to stdout."""

from __future__ import annotations

import io
import sys

import pytest

from jinav3.runtime import progress

DOC = "Berlin is big. It has many museums. The river Spree runs through it.\n\nKyoto has temples. " * 3


class Terminal(io.StringIO):
    """A stderr that says it is (or is not) a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch):
    def install(tty: bool) -> Terminal:
        stream = Terminal(tty)
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setattr(progress, "DELAY_S", 0.0)  # the automatic rule's delay, so short test work counts
        return stream

    return install


CALLS = {
    "late_chunk": lambda e, **kw: e.late_chunk(DOC, **kw),
    "late_chunk_many": lambda e, **kw: e.late_chunk_many([DOC, DOC], **kw),
    "embed": lambda e, **kw: e.embed([DOC, "Kyoto"], **kw),
    "embed_documents": lambda e, **kw: e.embed_documents([DOC], **kw),
}
BAR = {"late_chunk": "late chunking", "late_chunk_many": "late chunking", "embed": "embedding",
       "embed_documents": "embedding"}


@pytest.mark.parametrize("call", CALLS)
def test_default_shows_a_bar_on_a_terminal_only(tiny_embedder, stderr, capsys, call):
    shown = stderr(tty=True)
    CALLS[call](tiny_embedder)
    assert f"{BAR[call]}: 100%" in shown.getvalue()
    hidden = stderr(tty=False)
    CALLS[call](tiny_embedder)
    assert hidden.getvalue() == ""
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("call", CALLS)
def test_show_progress_true_always_and_false_never(tiny_embedder, stderr, call):
    forced = stderr(tty=False)
    CALLS[call](tiny_embedder, show_progress=True)
    assert f"{BAR[call]}: 100%" in forced.getvalue()
    silenced = stderr(tty=True)
    CALLS[call](tiny_embedder, show_progress=False)
    assert silenced.getvalue() == ""


def test_late_chunking_counts_every_token(tiny_embedder, stderr):
    shown = stderr(tty=False)
    tokens = tiny_embedder.backend.tokenize_document(DOC, "retrieval.passage").length
    tiny_embedder.late_chunk(DOC, show_progress=True)
    assert f"{tokens}/{tokens}" in shown.getvalue()


def test_a_quick_call_stays_silent_on_a_terminal(tiny_embedder, stderr, monkeypatch):
    shown = stderr(tty=True)
    monkeypatch.setattr(progress, "DELAY_S", 60.0)
    tiny_embedder.late_chunk(DOC)
    assert shown.getvalue() == ""
