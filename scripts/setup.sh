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
# Run a long step with a line every 10 s: pip prints nothing while it unpacks large wheels (torch: a minute or more).
with_heartbeat() {
  ( while sleep 10; do echo "setup: ... still working ($((SECONDS - STARTED)) s so far)"; done ) &
  local beat=$!
  local status=0
  "$@" || status=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  return "$status"
}
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
# torch first, the CPU build (scripts/install_torch_cpu.py: the PyTorch CPU index, a CPU wheel in pip's find-links,
# or pip's own indexes where torch is a CPU build; the CUDA build where nvidia-smi answers). Set JINAV3_TORCH to
# install a requirement of your own instead. The long steps run pip without -q: its lines (Collecting..., download
# bars, Installing...) and the heartbeat are the progress.
say "step 2/3: torch (the largest download, several hundred MB)"
with_heartbeat python scripts/install_torch_cpu.py
editables=(-e "shared_core[local,server,ray,int8,onnx,openvino,thai,pgvector]")
adapters=0
for pkg in packages/*/; do
  [ -f "$pkg/pyproject.toml" ] && editables+=(-e "$pkg[local,test]") && adapters=$((adapters + 1))
done
say "step 3/3: installing the jinav3 core with its extras (local, server, ray, int8, onnx, openvino, thai, pgvector), its $adapters framework" \
    "adapters, and the test and lint tools (a few minutes on a fresh machine)"
with_heartbeat python -m pip install --progress-bar on "${editables[@]}" --group test --group lint
python scripts/setup_state.py > "$STAMP"
say "done: everything is installed in .venv"
