"""Print the fingerprint of what ``scripts/setup.sh`` installs into ``.venv``: a hash of every pyproject.toml, the
setup script, the Python version, this checkout's path and ``JINAV3_TORCH``. setup.sh stores it after a successful
install and skips the install while it still matches. When ``jinav3`` is not importable from this checkout (a fresh
or a copied environment), the output is a sentence that never matches."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_files(root: Path) -> list[Path]:
    scripts = root / "scripts"
    return [scripts / "setup.sh", scripts / "setup_state.py", scripts / "install_torch_cpu.py",
            root / "pyproject.toml", root / "shared_core" / "pyproject.toml",
            *sorted((root / "packages").glob("*/pyproject.toml"))]


def fingerprint(root: Path = ROOT) -> str:
    digest = hashlib.sha256(f"{sys.version}|{root}|{os.environ.get('JINAV3_TORCH', '')}".encode())
    for path in project_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    spec = importlib.util.find_spec("jinav3")
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is None or not origin.is_relative_to(root.resolve()):
        return "jinav3 is not installed from this checkout"
    return digest.hexdigest()


if __name__ == "__main__":
    print(fingerprint())
