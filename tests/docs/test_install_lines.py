"""Every install line a user can read works as written on a fresh machine: in the README, the docs, the package
READMEs, and the messages in the code. jinav3 and its adapters are not on a package index, so a line that names
them must install from this repository (a folder with a pyproject.toml that defines the named extras, or a wheel
that ``scripts/build_wheels.sh`` writes); any other name must be a distribution that is really on PyPI. The PyPI
names are checked against ``pypi_names.txt``, a list verified by hand with ``pip download --no-deps NAME`` when a
line was added (this test does not reach the index)."""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
#: Distributions verified to exist on PyPI (one name a line; `#` starts a comment).
PYPI_NAMES = {canonicalize_name(line.split("#")[0].strip())
              for line in (Path(__file__).parent / "pypi_names.txt").read_text(encoding="utf-8").splitlines()
              if line.split("#")[0].strip()}
#: An install command and what follows it on its line, up to where prose or markup resumes.
_INSTALL = re.compile(r"\bpip3? install\b([^`\n#;|]*)")
#: Options that take a value, and those that take a file that must be in the repository.
_VALUE_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--platform", "--python-version",
                  "--target", "-t", "--prefix", "--report", "--group"}
_FILE_OPTIONS = {"-r", "--requirement", "-c", "--constraint"}


@dataclass(frozen=True)
class InstallLine:
    where: str
    text: str


def _projects() -> dict[str, tuple[Path, set[str], str]]:
    """Our distributions: name -> (folder, extras, version)."""
    found = {}
    for pyproject in [ROOT / "shared_core" / "pyproject.toml", *sorted(ROOT.glob("packages/*/pyproject.toml"))]:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        found[canonicalize_name(project["name"])] = (pyproject.parent, set(project.get("optional-dependencies", {})),
                                                     project["version"])
    return found


PROJECTS = _projects()


def _markdown_lines() -> list[InstallLine]:
    files = [ROOT / "README.md", ROOT / "shared_core" / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
             *sorted(ROOT.glob("packages/*/README.md"))]
    lines = []
    for file in files:
        for number, text in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            lines += [InstallLine(f"{file.relative_to(ROOT)}:{number}", m.group(0)) for m in _INSTALL.finditer(text)]
    return lines


def _python_lines() -> list[InstallLine]:
    """Install lines in the string constants of the core and the adapters (messages, docstrings); an f-string's
    literal parts count, so a line must not be built from placeholders."""
    lines = []
    for file in [*sorted((ROOT / "shared_core" / "src").rglob("*.py")), *sorted(ROOT.glob("packages/*/src/**/*.py")),
                 *sorted((ROOT / "examples").glob("*.py"))]:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for text in node.value.splitlines():
                    lines += [InstallLine(f"{file.relative_to(ROOT)}:{node.lineno}", m.group(0))
                              for m in _INSTALL.finditer(text)]
    return lines


ALL_LINES = _markdown_lines() + _python_lines()


def _targets(line: InstallLine) -> list[str]:
    """What the line installs: its arguments that are no options (``-e PATH`` counts as PATH), cut where prose
    resumes (`` (``, a word that is no requirement)."""
    text = line.text.split(" (")[0]
    words = shlex.split(text)[2:]
    targets, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word in _FILE_OPTIONS:
            skip = True
            continue
        if word in _VALUE_OPTIONS:
            skip = True
            continue
        if word in ("-e", "--editable"):
            continue
        if word.startswith("-"):
            continue
        targets.append(word)
    return targets


def _file_arguments(line: InstallLine) -> list[str]:
    words = shlex.split(line.text.split(" (")[0])
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in _FILE_OPTIONS]


def problem(target: str) -> str | None:
    """Why ``target`` cannot be installed as written, or None."""
    if "{" in target or "}" in target:
        return "built from a placeholder at run time; write the line literally"
    path_part, _, extras_part = target.partition("[")
    extras = {e.strip() for e in extras_part.rstrip("]").split(",") if e.strip()}
    if path_part.endswith(".whl"):  # a wheel that scripts/build_wheels.sh writes
        name, version = Path(path_part).name.split("-")[:2]
        project = PROJECTS.get(canonicalize_name(name))
        if project is None or project[2] != version:
            return f"no pyproject here builds {Path(path_part).name} (scripts/build_wheels.sh)"
        return None if extras <= project[1] else f"{name} has no extra(s) {sorted(extras - project[1])}"
    if "/" in path_part or path_part.startswith(".") or (ROOT / path_part / "pyproject.toml").is_file():
        folder = ROOT / path_part
        if not (folder / "pyproject.toml").is_file():
            return f"{path_part} is no folder of this repository with a pyproject.toml"
        defined = next((p[1] for p in PROJECTS.values() if p[0] == folder), set())
        return None if extras <= defined else f"{path_part} defines no extra(s) {sorted(extras - defined)}"
    try:
        requirement = Requirement(target)
    except InvalidRequirement as exc:
        return f"not a requirement: {exc}"
    name = canonicalize_name(requirement.name)
    if name in PROJECTS:
        return f"{requirement.name} is ours and not on PyPI; install it from this repository (pip install -e ...)"
    if name not in PYPI_NAMES:
        return f"{requirement.name} is not in tests/docs/pypi_names.txt (verify it is on PyPI, then add it)"
    return None


def test_the_scan_finds_the_lines_it_should():
    """The scan itself works: the README's own install block and the messages of the code are found."""
    places = {line.where.split(":")[0] for line in ALL_LINES}
    assert {"README.md", "shared_core/src/jinav3/runtime/extras.py", "docs/performance.md"} <= places, places
    assert len(ALL_LINES) > 30


@pytest.mark.parametrize("line", ALL_LINES, ids=lambda line: line.where)
def test_every_install_line_names_what_can_be_installed(line):
    targets = _targets(line)
    wrong = {target: problem(target) for target in targets if problem(target)}
    assert not wrong, f"{line.where}: {line.text!r}: {wrong}"
    for file in _file_arguments(line):
        assert (ROOT / file).is_file(), f"{line.where}: {file} is not in the repository"


@pytest.mark.parametrize("target", ["jinav3", "'jinav3[onnx-int8]'", "llama-index-node-parser-jinav3",
                                    "shared_core[nonsense]", "packages/nowhere", "dist/jinav3-9.9.9-py3-none-any.whl",
                                    "surely-not-a-real-distribution-xyz"])
def test_lines_that_cannot_work_are_caught(target):
    assert problem(shlex.split(target)[0]) is not None
