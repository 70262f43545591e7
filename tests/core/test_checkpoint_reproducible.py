"""The tiny checkpoint every test builds is the same file in every process: a figure or a failure measured on it
in one session (CI's) is the one a developer gets when running the test again (before, the tokenizer trainer's
hash-map order changed token ids between processes, and a statistical test passed or failed by that draw)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from jinav3.testing import build_checkpoint

DIGEST = """
import hashlib, pathlib, sys
from jinav3.testing import build_checkpoint
folder = pathlib.Path(sys.argv[1])
build_checkpoint(folder)
print(",".join(hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())))
"""


def digest(folder: Path) -> str:
    return ",".join(hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()))


def test_two_processes_build_the_same_tiny_checkpoint_byte_for_byte(tmp_path: Path) -> None:
    here = digest(build_checkpoint(tmp_path / "here"))
    for run in range(2):  # each child process gets its own hash-map seeds
        child = subprocess.run([sys.executable, "-c", DIGEST, str(tmp_path / f"child{run}")], capture_output=True,
                               text=True, check=True).stdout.strip().splitlines()[-1]
        assert child == here
