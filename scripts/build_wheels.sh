#!/usr/bin/env bash
# Build the wheels of the jinav3 core and of every framework adapter into dist/. jinav3 is not on PyPI: machines
# that install from files (a Ray cluster's nodes, docs/scale-out.md; an image without the repository) take these.
# Install an adapter with --find-links dist so that pip finds the core beside it:
#   pip install --find-links dist "dist/jinav3-0.1.0-py3-none-any.whl[local]" langchain-jinav3
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
rm -rf dist
"$PY" -m pip wheel --no-deps --progress-bar on --wheel-dir dist ./shared_core ./packages/*/
echo "build_wheels: wrote $(ls dist | tr '\n' ' ')into dist/"
