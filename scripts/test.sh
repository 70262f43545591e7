#!/usr/bin/env bash
# Fresh machine -> the whole test suite (core and every adapter), then ruff. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
exec python -m pytest "$@"
