"""Execute every code block of the documentation, so the docs never rot.

Python blocks of one page run in order in one namespace (like a notebook); shell blocks run line by line. The
only change made to the code is the model: ``jinaai/jina-embeddings-v3`` becomes the small real all-MiniLM-L6-v2
folder (no task adapters, 384 dimensions), since the real weights cannot be downloaded here. A block that cannot run
(installs, public API, downloads) is preceded by ``<!-- docs-test: skip (reason) -->``; a skip needs a reason.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MODEL = "jinaai/jina-embeddings-v3"
FENCE = re.compile(r"(?:<!-- docs-test: skip(?P<reason>[^>]*)-->\s*\n)?```(?P<lang>\w*)\n(?P<code>.*?)\n```", re.S)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    skip: str | None


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        reason = m.group("reason")
        found.append(Block(str(page.relative_to(DOCS)), text.count("\n", 0, m.start("code")) + 1, m.group("lang"),
                           m.group("code"), None if reason is None else reason.strip(" ()")))
    return found


PAGES = sorted(DOCS.rglob("*.md"))


def test_every_block_runs_or_says_why_not() -> None:
    every = [b for page in PAGES for b in blocks(page)]
    assert every, "no code blocks found"
    for block in every:
        known = ("python", "bash", "text") if block.skip is None else ("python", "bash", "text", "yaml")
        assert block.lang in known, f"{block.page}:{block.line}: unknown fence {block.lang!r}"
        if block.skip is not None:
            assert len(block.skip) > 10, f"{block.page}:{block.line}: a skipped block needs a reason"
    runnable = [b for b in every if b.skip is None and b.lang != "text"]
    assert len(runnable) >= 15


def _run_shell(block: Block, model: str, cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    for line in block.code.replace(MODEL, model).splitlines():
        line = line.split("  #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        argv = shlex.split(line)
        if argv[0] == "python":
            argv[0] = sys.executable
        if argv[0] == sys.executable and len(argv) > 1 and argv[1].endswith(".py"):
            argv[1] = str(ROOT / argv[1])
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{block.page}:{block.line}: {line}\n{done.stdout}\n{done.stderr}"


def _run_python(block: Block, model: str, namespace: dict) -> None:
    source = block.code.replace(MODEL, model)
    code = compile(source, f"{block.page}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # running our own documentation is the point
    if asyncio.iscoroutine(result):
        asyncio.run(result)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page: Path, minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in blocks(page):
        if block.skip is not None or block.lang == "text":
            continue
        if block.lang == "python":
            _run_python(block, str(minilm_dir), namespace)
        else:
            _run_shell(block, str(minilm_dir), tmp_path)
        ran += 1
    if ran == 0:
        pytest.skip(f"{page.name} has no runnable code block")
