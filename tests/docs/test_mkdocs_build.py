"""The documentation site builds with ``mkdocs build --strict``: broken links, missing anchors, missing pages and nav
errors fail. No ``-q``: mkdocs counts only the warnings it logs, so a quiet strict build passes with broken links."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def build(project: Path, site: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs", reason="mkdocs is in the test dependency group")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=project, capture_output=True, text=True, timeout=300, check=False)


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "evaluation" / "index.html").is_file()


def test_a_link_to_a_missing_anchor_fails_the_build(tmp_path: Path) -> None:
    """The check above can fail: the same site with one link to a heading that does not exist is refused."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / "concepts.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the sizes](evaluation.md#no-such-heading).\n")
    done = build(tmp_path, tmp_path / "site")
    assert done.returncode != 0
    assert "does not contain an anchor '#no-such-heading'" in done.stderr
