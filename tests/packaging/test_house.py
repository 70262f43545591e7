"""The house stays one-way: each family of the core imports only families below it, and no module imports itself
back through others. Read from the source (no import), so it also holds for modules whose extras are missing."""

from __future__ import annotations

import ast
from pathlib import Path

import jinav3

PACKAGE = Path(jinav3.__file__).parent
# Lowest first. A module may import its own family and any family listed before it.
LAYERS = [
    {"errors", "tasks", "matryoshka", "usage", "compact"},
    {"runtime"},
    {"model"},
    {"late_chunking"},
    {"backends"},
    {"embedder"},
    {"testing", "evaluation", "distributed", "server", "cli_inputs"},
    {"cli"},
    {"__init__"},
]
RANK = {family: rank for rank, families in enumerate(LAYERS) for family in families}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def family(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported(path: Path) -> set[str]:
    """jinav3 modules that ``path`` imports, at any depth of the file (lazy imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jinav3":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                names.add(candidate if is_module else node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == "jinav3")
    return names


GRAPH = {module_name(path): imported(path) for path in PACKAGE.rglob("*.py")}


def test_every_family_of_the_core_has_a_layer() -> None:
    assert {family(module) for module in GRAPH} <= set(RANK), "add the new family to LAYERS"


def test_no_module_imports_a_higher_family() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if RANK[family(target)] > RANK[family(module)]
    ]
    assert upward == []


def test_the_module_graph_has_no_cycle() -> None:
    """Within a family too: a cycle means two modules that are really one, or a helper in the wrong one."""
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in GRAPH.get(module, ()):
            if target != module and not module.startswith(target + "."):  # a package's own parent is not a cycle
                visit(target, (*path, module))
        done.add(module)

    for module in GRAPH:
        visit(module, ())
