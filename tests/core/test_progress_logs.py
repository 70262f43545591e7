"""Progress reaches logs: with stderr a pipe, long work writes whole progress lines at intervals (tokenising a long
text too), work shorter than the interval writes none, and ``show_progress=False`` silences it.

One subprocess (stderr a pipe, as under a service manager) runs four phases, each after a marker line on stderr;
the interval (``JINAV3_PROGRESS_INTERVAL``) is tiny where lines are expected, an hour where none are, and the
tokeniser's piece size is made small so that a short document is tokenised in pieces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import os, sys
from jinav3.late_chunking import tokenizing
tokenizing.PIECE_CHARS, tokenizing.OVERLAP_CHARS = 2_048, 256  # several pieces without a megabyte of text
from jinav3 import Embedder
embedder = Embedder.local(sys.argv[1], device="cpu")
document = "Berlin is big. It has many museums. The river Spree runs through it. " * 100
for phase, interval, show in (("lines", "0.001", None), ("quiet", "3600", None), ("off", "0.001", False),
                              ("forced", "3600", True)):
    os.environ["JINAV3_PROGRESS_INTERVAL"] = interval
    print(f"=== {phase}", file=sys.stderr, flush=True)
    embedder.late_chunk(document, chunker="paragraphs", window=256, show_progress=show)
    embedder.embed(["Kyoto has temples."] * 40, show_progress=show)
print("done")
"""


@pytest.fixture(scope="module")
def phases(tiny_checkpoint: Path) -> dict[str, list[str]]:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_checkpoint)], capture_output=True, text=True,
                            env={**os.environ, "JINAV3_PROGRESS_INTERVAL": "0.001"}, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"  # progress never goes to stdout
    assert "\r" not in result.stderr  # whole lines, never a bar redrawn in place
    found: dict[str, list[str]] = {}
    phase = None
    for line in result.stderr.splitlines():
        if line.startswith("=== "):
            phase = line[4:]
            found[phase] = []
        elif phase is not None:
            found[phase].append(line)
    return found


def progress(lines: list[str], what: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{what}:")]


@pytest.mark.parametrize(("what", "unit"), [("tokenising", "char"), ("late chunking", "tok"), ("embedding", "batch")])
def test_long_work_writes_progress_lines_to_a_pipe(phases, what, unit):
    found = progress(phases["lines"], what)
    assert found, f"no {what} line in {phases['lines']!r}"
    assert "100%" in found[-1] and unit in found[-1]  # the last line says that the work finished


def test_work_shorter_than_the_interval_and_show_progress_false_write_nothing(phases):
    for phase in ("quiet", "off"):
        assert not any(progress(phases[phase], what) for what in ("tokenising", "late chunking", "embedding"))


def test_show_progress_true_writes_a_first_and_a_last_line(phases):
    chunking = progress(phases["forced"], "late chunking")
    assert len(chunking) >= 2 and " 0%" in chunking[0] and "100%" in chunking[-1]
