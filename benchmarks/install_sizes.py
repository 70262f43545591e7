"""Install sizes: each install in a fresh venv (in a temporary folder), measured as what it adds to a bare venv's
``site-packages``, beside whether torch came along. Needs the package index and Python >= 3.11 (tomllib); never
run from the tests.

    python benchmarks/install_sizes.py [--only NAME ...] [--json benchmarks/results/install_sizes.json]

``jinav3[openvino]`` is measured as ``jinav3[onnx]`` + ``openvino`` on a checkout whose core has no such extra yet.
sentence-transformers needs torch: pip takes whatever torch the index (or a pip constraint) offers, the CPU build
where one is on disk, else a CUDA one several GB larger; the table names the torch it got. ``--torch SPEC`` (e.g.
``torch==2.13.0`` for the CPU wheel on this project's machines) is added to every install that pulls torch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import tomllib

CORE = Path(__file__).resolve().parent.parent / "shared_core"
PULL_TORCH = ("jinav3[local]", "sentence-transformers[onnx]", "sentence-transformers[openvino]")


def installs() -> dict[str, list[str]]:
    """Name -> pip requirements, for every install the performance page compares."""
    extras = tomllib.loads((CORE / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    openvino = [f"{CORE}[openvino]"] if "openvino" in extras else [f"{CORE}[onnx]", "openvino"]
    return {
        "jinav3[onnx]": [f"{CORE}[onnx]"],
        "jinav3[onnx-int8]": [f"{CORE}[onnx-int8]"],
        "jinav3[openvino]": openvino,
        "jinav3[local]": [f"{CORE}[local]"],
        "fastembed": ["fastembed"],
        "sentence-transformers[onnx]": ["sentence-transformers[onnx]"],
        "sentence-transformers[openvino]": ["sentence-transformers[openvino]"],
    }


def site_packages_mb(env: Path) -> float:
    """Bytes of every file under the venv's ``site-packages``, in MB."""
    (site,) = env.glob("lib/python*/site-packages")
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def measure(requirements: list[str], folder: Path) -> dict[str, object]:
    """A fresh venv in ``folder`` with ``requirements``: MB added to a bare venv, and the torch it pulled (if any)."""
    venv.create(folder, with_pip=True)
    python = str(folder / "bin" / "python")
    bare = site_packages_mb(folder)
    subprocess.run([python, "-m", "pip", "install", "-q", *requirements], check=True)
    torch = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                           capture_output=True, text=True).stdout.strip()
    return {"requirements": requirements, "mb": round(site_packages_mb(folder) - bare), "torch": torch or None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names to measure (default: all)")
    parser.add_argument("--torch", help="requirement added to the installs that pull torch, e.g. torch==2.13.0")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    chosen = {n: r for n, r in installs().items() if not args.only or n in args.only}
    if args.torch:
        chosen = {n: [*r, args.torch] if n in PULL_TORCH else r for n, r in chosen.items()}
    figures = {}
    for name, requirements in chosen.items():
        print(f"installing {name} into a fresh venv ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="install-size-") as tmp:
            figures[name] = measure(requirements, Path(tmp) / "venv")
    print("\n| install (fresh venv) | MB | torch |\n|---|---:|---|")
    for name, f in figures.items():
        print(f"| {name} | {f['mb']:,} | {f['torch'] or 'none'} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "installs": figures}, indent=2),
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
