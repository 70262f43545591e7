"""The LangChain guide's install block, run as written in a fresh virtual environment, gets torch's CPU build and
no ``nvidia-*`` wheel. ``scripts/install_torch_cpu.py`` installs torch for real (the CPU wheel is reused from where
pip finds it); the block's ``pip install`` line then runs as a dry run with a report (``--dry-run --report``): it
must install nothing of torch again and nothing from ``nvidia-*`` or ``triton``. Slow: a minute or two, mostly
unpacking torch."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guides" / "langchain.md"
GPU_ONLY = re.compile(r"^(nvidia-|triton$|pytorch-triton)")
NO_CPU_BUILD = 3  # scripts/install_torch_cpu.py: no CPU build reachable from this machine

pytestmark = pytest.mark.slow


def install_block() -> list[list[str]]:
    """The commands of the guide's first bash block, comments removed, one list of words per line."""
    text = GUIDE.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)\n```", text, re.S)
    assert block is not None, f"{GUIDE} has no bash block"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]


def test_the_block_is_the_one_the_readme_describes():
    commands = [" ".join(words) for words in install_block()]
    assert commands[0].startswith("python -m venv .venv")
    assert commands[1] == "python scripts/install_torch_cpu.py"
    assert commands[2].startswith("pip install -e shared_core[local] -e packages/langchain-jinav3")


def test_the_guide_block_pulls_no_nvidia_wheel(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    _, torch_line, pip_line = install_block()
    assert torch_line[0] == "python" and pip_line[:2] == ["pip", "install"]
    done = subprocess.run([python, *torch_line[1:]], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    if done.returncode == NO_CPU_BUILD:
        pytest.skip(f"no CPU build of torch is reachable from this machine: {done.stdout[-500:]}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = tmp_path / "report.json"
    resolved = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                               *pip_line[2:]], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    names = [item["metadata"]["name"] for item in json.loads(report.read_text(encoding="utf-8"))["install"]]
    assert "langchain-jinav3" in names and "langchain-qdrant" in names, names
    assert "torch" not in names, "the block would install torch again, over the CPU build"
    assert not [name for name in names if GPU_ONLY.match(name.lower())], names
    installed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                               check=True, timeout=300).stdout
    present = {item["name"].lower(): item["version"] for item in json.loads(installed)}
    assert "torch" in present and not [name for name in present if GPU_ONLY.match(name)], present
