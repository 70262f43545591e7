#!/usr/bin/env bash
# Fresh machine -> late-chunked multilingual search: installs what it needs, then runs examples/quickstart.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/quickstart.py "$@"
