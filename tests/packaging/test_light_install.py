"""The distributions as a user installs them: built wheels, the light install, the declared floors.

For each adapter: build every wheel, install the core and that adapter WITHOUT the ``local`` extra into a fresh
virtual environment, with the adapter's framework pinned to the lower bound its pyproject declares, then run the
adapter's smoke script there against a real ``jinav3 serve`` app on 127.0.0.1 (which runs here, in the full
environment, on the tiny checkpoint). The script asserts that torch, transformers and safetensors are absent and
that ``Embedder.local`` names the extra; this test asserts the vectors equal the local model's.

Building wheels and environments installs from the package index (pip's cache makes reruns quicker): slow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="jinav3[server] is not installed")
pytest.importorskip("uvicorn", reason="jinav3[server] is not installed")
pytest.importorskip("prometheus_client", reason="jinav3[server] is not installed")

from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from jinav3 import Embedder, SentenceChunker
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer

from ._smoke import DIMENSIONS, DOCUMENT, QUERY, TEXTS

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CORE = ROOT / "shared_core"
#: adapter folder -> (its smoke script, the framework whose version the script reports)
ADAPTERS = {
    "jinav3-haystack": ("smoke_haystack.py", "haystack-ai"),
    "llama-index-embeddings-jinav3": ("smoke_llama_index_embedding.py", "llama-index-core"),
    "llama-index-node-parser-jinav3": ("smoke_llama_index.py", "llama-index-core"),
    "langchain-jinav3": ("smoke_langchain.py", "langchain-core"),
}
KEY = "sk-packaging-test"
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))

pytestmark = pytest.mark.slow


def floors(folder: Path) -> dict[str, str]:
    """``{distribution: lower bound}`` of every dependency of ``folder``'s pyproject with a ``>=`` bound (jinav3
    itself excluded: it comes from the wheel built here)."""
    dependencies = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    found = {}
    for requirement in dependencies:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        bound = re.search(r">=\s*([0-9][^,;\s]*)", requirement)
        if bound and name != "jinav3":
            found[name] = bound.group(1)
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the current environment into the fresh one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def run(*command: object, **kwargs: object) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=clean_env(), **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{distribution folder name: wheel}`` for the core and every adapter."""
    out = tmp_path_factory.mktemp("wheels")
    folders = [CORE, *PACKAGES]  # all of them: an adapter may depend on another one (found with --find-links)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, *folders, timeout=600)
    built = {}
    for folder in folders:
        project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
        (wheel,) = out.glob(f"{project.replace('-', '_')}-*.whl")
        built[folder.name] = wheel
    return built


@pytest.fixture(scope="module")
def server(tiny_embedder: Embedder) -> Iterator[BackgroundServer]:
    running = BackgroundServer(create_app(tiny_embedder, ServerConfig(api_keys=(KEY,)))).start()
    yield running
    running.stop()


def test_every_wheel_ships_the_license_and_the_core_is_typed(wheels):
    license_text = (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in license_text and b"Version 2.0" in license_text
    for folder, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            licenses = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/licenses/LICENSE", n)]
            assert len(licenses) == 1, f"{wheel.name} ships no LICENSE: {names}"
            assert archive.read(licenses[0]) == license_text
            metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "License-Expression: Apache-2.0" in metadata
        requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)
        if folder == "shared_core":
            assert "jinav3/py.typed" in names
            base = [r for r in requires if "extra ==" not in r]
            assert not [r for r in base if re.match(r"(torch|transformers|safetensors|huggingface)", r)], base
        else:
            assert "jinav3<0.2,>=0.1" in requires, requires
            assert "jinav3[local]<0.2,>=0.1; extra == 'local'" in requires, requires


def test_every_distribution_in_packages_has_a_smoke_test():
    assert {p.name for p in PACKAGES} == set(ADAPTERS)


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_light_install_at_the_declared_floor_runs_the_api_path(adapter, wheels, server, tiny_embedder, tmp_path):
    script, framework = ADAPTERS[adapter]
    pins = [f"{name}=={version}" for name, version in floors(ROOT / "packages" / adapter).items()]
    assert any(pin.startswith(f"{framework}==") for pin in pins), f"{adapter} declares no floor for {framework}"
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, timeout=300)
    python = venv / "bin" / "python"
    # the outer pip installs into the new environment (--python), so the environment itself needs no pip
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--find-links",
        wheels["shared_core"].parent, wheels["shared_core"], wheels[adapter], *pins, timeout=900)
    result = subprocess.run(
        [str(python), str(HERE / script)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=clean_env(JINAV3_SMOKE_URL=server.base_url, JINAV3_SMOKE_KEY=KEY,
                      JINAV3_SMOKE_WIDTH=str(tiny_embedder.dimensions)),
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    got = json.loads(result.stdout.strip().splitlines()[-1])

    floor = floors(ROOT / "packages" / adapter)[framework]
    assert Version(got["version"]) == Version(floor), f"{framework} {got['version']} installed, the floor is {floor}"
    np.testing.assert_allclose(got["query"], tiny_embedder.embed([QUERY], "retrieval.query", DIMENSIONS)[0],
                               atol=1e-4)
    np.testing.assert_allclose(got["documents"], tiny_embedder.embed(TEXTS, "retrieval.passage", DIMENSIONS),
                               atol=1e-4)
    if adapter == "llama-index-embeddings-jinav3":  # the embedding alone: its splitter is the node-parser package
        assert got["spans"] == [] and got["chunks"] == []
        return
    spans = [tuple(span) for span in got["spans"]]
    assert spans == [tuple(span) for span in SentenceChunker().spans(DOCUMENT)]
    local = tiny_embedder.late_chunk(DOCUMENT, spans=spans, task="retrieval.passage", dimensions=DIMENSIONS)
    np.testing.assert_allclose(got["chunks"], [c.embedding for c in local], atol=1e-4)
