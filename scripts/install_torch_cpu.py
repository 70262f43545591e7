"""Install the CPU build of torch into the running Python, before jinav3's ``local`` extra asks for torch.

Why: on Linux x86_64, ``pip install torch`` (or any package that requires it) takes the CUDA build from PyPI, with
about 3 GB of ``nvidia-*`` wheels a CPU machine never uses. With a CPU torch installed first, ``pip install -e
'shared_core[local]'`` finds ``torch>=2.4`` satisfied and installs nothing more of it.

Where the CPU build comes from, first that works: the PyTorch CPU index (download.pytorch.org/whl/cpu), a CPU wheel
(``torch-*+cpu-*.whl``) in a folder of pip's own ``find-links`` setting, then plain ``torch`` from pip's indexes
(the CPU build on macOS, Windows and Linux aarch64). Each is first resolved with ``pip install --dry-run --report``
and taken only when nothing from ``nvidia-*`` or ``triton`` comes with it. On a machine with an NVIDIA GPU
(``nvidia-smi`` answers) the script installs plain ``torch`` (the CUDA build) instead; ``JINAV3_TORCH`` names a
requirement to install as is (no check). Exit status 3: no CPU build is reachable from here.

Usage: ``python scripts/install_torch_cpu.py`` (in the activated virtual environment), then the install line of
the README or a guide.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from importlib import metadata
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: Distributions that only a GPU build of torch brings along.
GPU_ONLY = re.compile(r"^(nvidia-|triton$|pytorch-triton)")
NO_CPU_BUILD = 3


def say(message: str) -> None:
    print(f"install_torch_cpu: {message}", flush=True)


def pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], text=True, capture_output=capture, check=False)


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5)
    except OSError:
        return False
    return True


def find_links_cpu_wheels() -> list[str]:
    """``torch==VERSION`` for each CPU wheel (``+cpu``) that pip's find-links folders offer this Python."""
    listed = pip("config", "list", capture=True).stdout
    values = [*re.findall(r"find-links='?([^'\n]+)'?", listed), os.environ.get("PIP_FIND_LINKS", "")]
    folders = {Path(p) for value in values for p in value.split() if Path(p).is_dir()}
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    versions = {wheel.name.split("-")[1] for folder in folders for wheel in folder.glob(f"torch-*+cpu-{tag}-*.whl")}
    return [f"torch=={version.split('+')[0]}" for version in sorted(versions, reverse=True)]


def candidates() -> list[tuple[str, list[str]]]:
    found = []
    if reachable(f"{CPU_INDEX}/torch/"):
        found.append(("the PyTorch CPU index", ["torch", "--index-url", CPU_INDEX]))
    found += [(f"a CPU wheel in pip's find-links ({requirement})", [requirement])
              for requirement in find_links_cpu_wheels()]
    found.append(("pip's own indexes", ["torch"]))
    return found


def gpu_wheels(args: list[str]) -> list[str] | None:
    """What of ``nvidia-*``/``triton`` installing ``args`` would bring (empty: a CPU build), None if it cannot
    be resolved at all."""
    done = pip("install", "--dry-run", "--quiet", "--report", "-", *args, capture=True)
    if done.returncode != 0:
        return None
    report = json.loads(done.stdout)
    names = [item["metadata"]["name"] for item in report.get("install", [])]
    return [name for name in names if GPU_ONLY.match(name.lower())]


def main() -> int:
    try:
        installed = metadata.version("torch")
    except metadata.PackageNotFoundError:
        pass
    else:
        say(f"torch {installed} is installed already; nothing to do")
        return 0
    chosen = os.environ.get("JINAV3_TORCH")
    if chosen:
        say(f"installing {chosen} (JINAV3_TORCH)")
        return pip("install", "--progress-bar", "on", *chosen.split()).returncode
    if shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0:
        say("an NVIDIA GPU answers nvidia-smi: installing torch's CUDA build from pip's indexes")
        return pip("install", "--progress-bar", "on", "torch").returncode
    for where, args in candidates():
        say(f"resolving torch from {where} (a dry run)")
        extra = gpu_wheels(args)
        if extra is None:
            say(f"  {where}: torch cannot be resolved there")
            continue
        if extra:
            say(f"  {where}: a GPU build ({len(extra)} GPU-only wheels, e.g. {extra[0]}); not taken")
            continue
        say(f"installing the CPU build of torch from {where}")
        return pip("install", "--progress-bar", "on", *args).returncode
    say(f"no CPU build of torch is reachable from here; install one from {CPU_INDEX} "
        f"(pip install torch --index-url {CPU_INDEX}), or set JINAV3_TORCH to a requirement that names one")
    return NO_CPU_BUILD


if __name__ == "__main__":
    raise SystemExit(main())
