#!/usr/bin/env bash
# Create .venv (once) and install the core, every adapter in packages/ and the test tools into it.
# Safe to re-run: pip skips what is already there. Needs only Python >= 3.10 with pip and venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade "pip>=25.1"
# torch first: a CPU build is enough for everything here. On this project's machines pip takes torch==2.13.0
# from local disk; elsewhere set JINAV3_TORCH (e.g. "torch" for the newest build for your platform).
python -c "import torch" 2>/dev/null || python -m pip install -q "${JINAV3_TORCH:-torch==2.13.0}"
editables=(-e "shared_core[server,ray,int8]")
for pkg in packages/*/; do
  [ -f "$pkg/pyproject.toml" ] && editables+=(-e "$pkg[test]")
done
python -m pip install -q "${editables[@]}" --group test --group lint
