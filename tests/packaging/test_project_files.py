"""Packaging facts that need no build: one license text everywhere, bounded core requirements, a ``local`` extra on
every adapter, and a setup script that skips the install while nothing changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [ROOT / "shared_core", *sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))]
HEAVY = ("torch", "transformers", "safetensors", "huggingface_hub")


def project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.mark.parametrize("folder", DISTRIBUTIONS, ids=lambda p: p.name)
def test_every_distribution_has_the_one_license(folder):
    assert (folder / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    assert project(folder)["license"] == "Apache-2.0" and project(folder)["license-files"] == ["LICENSE"]


def test_the_core_needs_no_torch_and_its_extras_bring_it():
    core = project(ROOT / "shared_core")
    assert not [r for r in core["dependencies"] if r.startswith(HEAVY)]
    extras = core["optional-dependencies"]
    assert {re.match(r"[\w-]+", r).group(0) for r in extras["local"]} == {*HEAVY}
    assert "jinav3[local]" in extras["server"] and "jinav3[local]" in extras["ray"]
    assert (ROOT / "shared_core" / "src" / "jinav3" / "py.typed").exists()


@pytest.mark.parametrize("folder", DISTRIBUTIONS[1:], ids=lambda p: p.name)
def test_adapters_bound_the_core_and_offer_the_local_extra(folder):
    meta = project(folder)
    assert "jinav3>=0.1,<0.2" in meta["dependencies"]
    assert meta["optional-dependencies"]["local"] == ["jinav3[local]>=0.1,<0.2"]


def fake_checkout(tmp_path: Path) -> Path:
    """The files setup.sh fingerprints, a ``.venv/bin/python`` and an importable ``jinav3`` inside the copy."""
    root = tmp_path / "checkout"
    for relative in ("scripts/setup.sh", "scripts/setup_state.py", "scripts/install_torch_cpu.py", "pyproject.toml",
                     "shared_core/pyproject.toml",
                     *(str(p.relative_to(ROOT)) for p in (ROOT / "packages").glob("*/pyproject.toml"))):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, root / relative)
    (root / "shared_core" / "src" / "jinav3").mkdir(parents=True)
    (root / "shared_core" / "src" / "jinav3" / "__init__.py").write_text("")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return root


def state(root: Path, **env: str) -> str:
    result = subprocess.run([str(root / ".venv/bin/python"), str(root / "scripts/setup_state.py")], check=True,
                            capture_output=True, text=True, env={**os.environ, **env})
    return result.stdout.strip()


def test_setup_skips_the_install_while_the_project_files_match(tmp_path):
    root = fake_checkout(tmp_path)
    ours = {"PYTHONPATH": str(root / "shared_core" / "src")}
    fingerprint = state(root, **ours)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    (root / ".venv" / ".jinav3-setup").write_text(fingerprint + "\n")
    result = subprocess.run(["bash", str(root / "scripts/setup.sh")], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **ours})
    assert result.returncode == 0 and ".venv is up to date" in result.stdout, result.stderr

    adapter = next((root / "packages").glob("*/pyproject.toml"))
    adapter.write_text(adapter.read_text() + "\n# changed\n")
    assert state(root, **ours) != fingerprint  # a changed pyproject means a reinstall
    assert state(root, JINAV3_TORCH="torch", **ours) != state(root, **ours)
    assert state(root, PYTHONPATH="") == "jinav3 is not installed from this checkout"  # e.g. a copied .venv
