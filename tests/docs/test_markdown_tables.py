"""Every Markdown table in the README, the docs and the package READMEs is whole: a header row, a separator row,
then rows with as many cells as the header. A paragraph dropped into a table's middle leaves its second half
without header and separator, which renders as plain text with pipes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted(ROOT.glob("packages/*/README.md"))]
SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


def cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row.strip().strip("|")))


def tables(page: Path) -> list[tuple[int, list[str]]]:
    """``(first line number, rows)`` of each run of table rows outside code fences."""
    found, current, fenced = [], [], False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("|"):
            current.append((number, line))
            continue
        if current:
            found.append((current[0][0], [row for _, row in current]))
            current = []
    if current:
        found.append((current[0][0], [row for _, row in current]))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_table_has_a_header_and_whole_rows(page):
    for line, rows in tables(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        assert len(rows) >= 2 and SEPARATOR.match(rows[1].replace(" ", "")), f"{where}: a table without header row"
        width = cells(rows[0])
        assert all(cells(row) == width for row in rows[2:]), f"{where}: rows of another width than the header"
