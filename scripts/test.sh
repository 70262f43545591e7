#!/usr/bin/env bash
# Fresh machine -> ruff, the whole test suite (core and every adapter), then the tests marked cpu_class once more as
# the other CPU class (JINAV3_CPU_CLASS: avx2 on a native-bf16 CPU, native-bf16 elsewhere), so every machine checks
# the precision choices of both. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
python -m pytest "$@"
other=$(python -c "from jinav3.runtime.hardware import cpu_features; print('avx2' if cpu_features().native_bf16 else 'native-bf16')")
echo "test.sh: the cpu_class tests again, as if this were an $other CPU (--cpu-class $other)"
status=0
python -m pytest -m cpu_class --cpu-class "$other" "$@" || status=$?
if [ "$status" -eq 5 ]; then status=0; fi  # the selection held no cpu_class test
exit "$status"
