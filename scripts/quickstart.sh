#!/usr/bin/env bash
# Fresh machine -> late-chunked multilingual search: installs what it needs, then runs examples/quickstart.py.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "quickstart: step 1/2: installing jinav3 and its dependencies into .venv (skipped when up to date)"
bash scripts/setup.sh
echo "quickstart: step 2/2: examples/quickstart.py: load the model, late-chunk the corpus in examples/corpus," \
     "search it"
exec .venv/bin/python examples/quickstart.py "$@"
