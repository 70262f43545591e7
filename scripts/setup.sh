#!/usr/bin/env bash
# Create .venv (once) and install everything into it: the core with all its extras (local, server, ray), every
# adapter in packages/ with its local and test extras, and the test and lint tools. Needs only Python >= 3.10 with
# pip and venv.
# Re-running is quick: nothing is installed while .venv/.jinav3-setup matches scripts/setup_state.py's fingerprint
# (every pyproject.toml, these scripts, the Python version, this checkout) and .venv's jinav3 is this checkout's.
# Delete that file to force a reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STARTED=$SECONDS
say() { echo "setup: $* ($((SECONDS - STARTED)) s so far)"; }
if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
STAMP=.venv/.jinav3-setup

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(.venv/bin/python scripts/setup_state.py)" ]; then
  echo "setup: .venv is up to date with the project's files (delete $STAMP to force a reinstall)"
  exit 0
fi
rm -f "$STAMP"
. .venv/bin/activate
say "step 1/3: upgrading pip"
python -m pip install -q --upgrade "pip>=25.1"
# torch first: a CPU build is enough for everything here. On this project's machines pip takes torch==2.13.0
# from local disk; elsewhere set JINAV3_TORCH (e.g. "torch" for the newest build for your platform).
# The long steps run pip without -q: its lines (Collecting..., download bars, Installing...) are the progress.
if python -c "import torch" 2>/dev/null; then
  say "step 2/3: torch is installed already ($(python -c 'import torch; print(torch.__version__)'))"
else
  say "step 2/3: installing ${JINAV3_TORCH:-torch==2.13.0} (the largest download, several hundred MB)"
  python -m pip install --progress-bar on "${JINAV3_TORCH:-torch==2.13.0}"
fi
editables=(-e "shared_core[local,server,ray,int8,onnx,openvino,thai]")
adapters=0
for pkg in packages/*/; do
  [ -f "$pkg/pyproject.toml" ] && editables+=(-e "$pkg[local,test]") && adapters=$((adapters + 1))
done
say "step 3/3: installing the jinav3 core with its extras (local, server, ray, int8, onnx, openvino, thai), its $adapters framework" \
    "adapters, and the test and lint tools (a few minutes on a fresh machine)"
python -m pip install --progress-bar on "${editables[@]}" --group test --group lint
python scripts/setup_state.py > "$STAMP"
say "done: everything is installed in .venv"
