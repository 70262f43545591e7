"""Any selection of the suite collects without an optional extra: the tests that need it are skipped, the others
still run. Runs pytest's collection in this environment's Python with the extra's modules blocked (as if not
installed), so the whole tree is checked, not only the folders known to need the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: extra -> (modules it brings, test paths that must then be skipped)
EXTRAS = {
    "int8": (("onnxruntime", "onnx"), ("tests/core/test_quantization.py",)),
    "openvino": (("openvino",), ()),  # its tests are parameters of the ONNX engine's, skipped when they run
    "thai": (("pythainlp", "pycrfsuite"), ()),  # the Thai test skips; Thai text is refused with the install line
    "ray": (("ray", "pyarrow"), ("tests/distributed/",)),
    "pgvector": (("psycopg",), ("tests/stores/test_pgvector_binary.py",)),
    "server": (("fastapi", "uvicorn", "prometheus_client"), ("tests/api/", "tests/evaluation/test_api_eval.py")),
    "adapters": (("haystack", "langchain_core", "llama_index"),
                 ("tests/haystack_adapter/", "tests/langchain_adapter/", "tests/llama_index_adapter/")),
}


@pytest.mark.slow
@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_suite_collects_without_an_extra(extra):
    modules, needing = EXTRAS[extra]
    program = textwrap.dedent(f"""
        import sys
        for name in {modules!r}:
            sys.modules[name] = None  # "import name" now raises ModuleNotFoundError, as when not installed
        import pytest
        sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"]))
    """)
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(collected) > 100  # the rest of the suite is still there
    assert not [test for test in collected if test.startswith(needing)]
