"""``jinav3[onnx]`` and ``jinav3[openvino]`` run the model without torch: their dependency trees have no torch, both
engines import and run with torch, transformers and safetensors blocked, and a fresh environment with only the onnx
extra gives the torch engine's vectors.

Three checks, fastest first: the declared tree walked through this environment's installed metadata (offline, a
second); this environment's Python with torch blocked (seconds); a fresh virtual environment installing
``shared_core[onnx]`` from the package index (slow: minutes when pip's cache is cold).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from jinav3 import TASKS

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "shared_core"
TORCH_FAMILY = {"torch", "transformers", "safetensors", "triton", "sentence-transformers"}
TEXTS = ["Berlin is the capital of Germany.", "東京は日本の首都です。", "x"]
DOCUMENT = "Berlin is the capital of Germany. Paris est la capitale de la France. Москва — столица России."
SPANS = [(0, 33), (34, 67), (68, len(DOCUMENT))]
#: What the fresh environment runs: every task, plain and late chunking, as JSON on standard output.
PROGRAM = """
import importlib.util, json, sys
from jinav3 import TASKS, Embedder
emb = Embedder.local(sys.argv[1], engine="onnx")
out = {"plain": {t: emb.backend.embed(TEXTS, t).tolist() for t in TASKS},
       "late": emb.backend.late_chunk([DOCUMENT], [SPANS], "retrieval.passage")[0].tolist(),
       "torch_loaded": [m for m in ("torch", "transformers", "safetensors") if sys.modules.get(m) is not None],
       "torch_installed": importlib.util.find_spec("torch") is not None}
print(json.dumps(out))
"""


def extra_requirements(extra: str) -> list[Requirement]:
    """The core's requirements and the extra's, with the extras it names of the core itself (``jinav3[onnx]``)
    replaced by their requirements."""
    project = tomllib.loads((CORE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for line in project["optional-dependencies"][extra]:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == "jinav3":
            found += [r for other in sorted(requirement.extras) for r in extra_requirements(other)]
        else:
            found.append(requirement)
    return found


@pytest.mark.parametrize(("extra", "runtime"),
                         [("onnx", "onnxruntime"), ("onnx-int8", "onnx"), ("openvino", "openvino")])
def test_the_extra_has_no_torch_in_its_dependency_tree(extra, runtime):
    """Every requirement of the extra, and theirs, as this environment's installed metadata declares them."""
    seen: dict[str, list[str]] = {}
    pending = [(r, [f"jinav3[{extra}]"]) for r in extra_requirements(extra)]
    while pending:
        requirement, path = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen[name] = path
        try:
            declared = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{requirement.name} (needed via {' -> '.join(path)}) is not installed here: run setup.sh")
        for line in declared:
            child = Requirement(line)
            extras = ["", *sorted(requirement.extras)]
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                pending.append((child, [*path, requirement.name]))
    found = {name: " -> ".join(path) for name, path in seen.items() if name in TORCH_FAMILY}
    assert not found, f"the {extra} extra pulls in {found}"
    assert {runtime, "tokenizers", "numpy"} <= set(seen)


def run_blocked(code: str) -> subprocess.CompletedProcess:
    """This environment's Python with torch & co. unimportable, as on an install without them."""
    block = "import sys\nfor name in ('torch', 'transformers', 'safetensors'):\n    sys.modules[name] = None\n"
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # a checkout run with PYTHONPATH tests its own sources in the subprocess too
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run([sys.executable, "-c", block + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=env)


def constants() -> str:
    return f"TEXTS = {TEXTS!r}\nDOCUMENT = {DOCUMENT!r}\nSPANS = {SPANS!r}\n"


def assert_same_as_torch(result: subprocess.CompletedProcess, tiny_fp32) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["torch_loaded"] == []
    for task in TASKS:
        assert np.abs(np.array(out["plain"][task]) - tiny_fp32.backend.embed(TEXTS, task)).max() <= 1e-5
    late = tiny_fp32.backend.late_chunk([DOCUMENT], [SPANS], "retrieval.passage")[0]
    assert np.abs(np.array(out["late"]) - late).max() <= 1e-5
    return out


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_the_engine_runs_with_torch_blocked(tiny_onnx_dir, tiny_fp32, tmp_path, engine):
    """Also int8 and the CLI: ``jinav3 embed --engine onnx`` (or ``openvino``) needs no torch either."""
    if engine == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra (jinav3[openvino]) is not installed")
    script = tmp_path / "run.py"
    script.write_text(constants() + PROGRAM.replace('engine="onnx"', f"engine={engine!r}"), encoding="utf-8")
    result = run_blocked(f"import sys; sys.argv = ['run', {str(tiny_onnx_dir)!r}]\nexec(open({str(script)!r}).read())")
    assert_same_as_torch(result, tiny_fp32)
    result = run_blocked(f"""
        from jinav3 import Embedder
        from jinav3.cli import main
        vectors = Embedder.local({str(tiny_onnx_dir)!r}, engine={engine!r}, dtype="int8").embed(["x", "y"])
        assert vectors.shape == (2, 32) and 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]
        raise SystemExit(main(["embed", "--model", {str(tiny_onnx_dir)!r}, "--engine", {engine!r}, "hello"]))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["text"] == "hello"


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_int8_without_the_onnx_package_names_the_extra_until_the_graph_is_written(tiny_onnx_dir, tmp_path, engine):
    """``jinav3[onnx]`` has no onnx package (it keeps the install small): int8's first load, which writes the int8
    graph, says to install ``jinav3[onnx-int8]``; once written beside the model it loads without onnx."""
    if engine == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra (jinav3[openvino]) is not installed")
    folder = tmp_path / "model"
    shutil.copytree(tiny_onnx_dir, folder, ignore=shutil.ignore_patterns("model_int8*"))
    load = f"""
        import sys
        sys.modules["onnx"] = None
        from jinav3 import Embedder
        from jinav3.errors import ModelLoadError
        try:
            print(Embedder.local({str(folder)!r}, engine={engine!r}, dtype="int8").embed(["x"]).shape)
        except ModelLoadError as error:
            print(error)
    """
    refused = run_blocked(load)
    assert refused.returncode == 0, refused.stderr[-3000:]
    assert "pip install -e 'shared_core[onnx-int8]'" in refused.stdout and "not installed" in refused.stdout
    written = subprocess.run([sys.executable, "-c", f"from jinav3 import Embedder; Embedder.local({str(folder)!r}, "
                              f"engine={engine!r}, dtype='int8')"], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr[-3000:]
    assert run_blocked(load).stdout.strip() == "(1, 32)"


@pytest.mark.slow
def test_a_fresh_environment_with_only_the_onnx_extra(tiny_onnx_dir, tiny_fp32, tmp_path):
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                              f"{CORE}[onnx]"], capture_output=True, text=True, timeout=1200, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    script = tmp_path / "run.py"
    script.write_text(constants() + PROGRAM, encoding="utf-8")
    result = subprocess.run([str(python), str(script), str(tiny_onnx_dir)], capture_output=True, text=True,
                            timeout=300, env={**env, "HF_HUB_OFFLINE": "1"})
    out = assert_same_as_torch(result, tiny_fp32)
    assert out["torch_installed"] is False
    onnx_found = subprocess.run([str(python), "-c", "import importlib.util; print(importlib.util.find_spec('onnx'))"],
                                capture_output=True, text=True, timeout=60, env=env)
    assert onnx_found.stdout.strip() == "None", "jinav3[onnx] should not install the onnx package (onnx-int8 does)"
