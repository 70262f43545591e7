"""int8 on several threads: OpenMP's idle workers are put to sleep before torch loads (the int8 row blocks share the
cores with them), never against the user's own choice, and a process where torch came first is warned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from jinav3.runtime import openmp
from jinav3.runtime.settings import LOCAL_DTYPES

spellings = st.sampled_from(sorted(LOCAL_DTYPES)).flatmap(
    lambda name: st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(name, upper, strict=True))
    )
)
policies = st.none() | st.sampled_from(["PASSIVE", "ACTIVE", "passive", ""])


@given(dtype=spellings | st.none() | st.text(max_size=8), policy=policies, threads=st.integers(1, 64))
def test_only_int8_gets_sleeping_workers_and_a_users_choice_stands(dtype, policy, threads):
    base = {"PATH": "/bin"} | ({} if policy is None else {openmp.WAIT_POLICY: policy})
    env = openmp.environment(dtype, base)
    int8 = dtype is not None and LOCAL_DTYPES.get(dtype.lower()) == "int8"  # unknown names: the backend refuses
    expected = policy if policy is not None else "PASSIVE" if int8 else None
    assert env.get(openmp.WAIT_POLICY) == expected
    assert {k: v for k, v in env.items() if k != openmp.WAIT_POLICY} == {"PATH": "/bin"}


def _run(code: str, env_policy: str | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != openmp.WAIT_POLICY}
    if env_policy is not None:
        env[openmp.WAIT_POLICY] = env_policy
    return subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=True)


LOAD = ("from jinav3 import Embedder; e = Embedder.local({folder!r}, dtype={dtype!r}); "
        "e.embed(['a b c'], 'retrieval.query')")


def test_an_int8_model_loaded_first_sets_the_policy_before_torch(tiny_checkpoint: Path):
    probe = "; import os, sys; print('policy', os.environ.get('OMP_WAIT_POLICY'))"
    out = _run(LOAD.format(folder=str(tiny_checkpoint), dtype="int8") + probe)
    assert "policy PASSIVE" in out.stdout and "OpenMP" not in out.stderr
    out = _run(LOAD.format(folder=str(tiny_checkpoint), dtype="float32") + probe)
    assert "policy None" in out.stdout
    out = _run(LOAD.format(folder=str(tiny_checkpoint), dtype="int8") + probe, env_policy="ACTIVE")
    assert "policy ACTIVE" in out.stdout


def test_torch_first_with_spinning_workers_is_warned(tiny_checkpoint: Path):
    load = LOAD.format(folder=str(tiny_checkpoint), dtype="int8")
    out = _run("import torch; torch.set_num_threads(2); " + load)
    assert "PerformanceWarning" in out.stderr and "OMP_WAIT_POLICY=PASSIVE" in out.stderr
    assert "PerformanceWarning" not in _run("import torch; torch.set_num_threads(1); " + load).stderr
    assert "PerformanceWarning" not in _run("import torch; torch.set_num_threads(2); " + load, "PASSIVE").stderr


def test_the_cli_sets_it_for_int8_before_loading(tiny_checkpoint: Path):
    code = ("import os, sys; from jinav3.cli import main; "
            f"rc = main(['embed', '--model', {str(tiny_checkpoint)!r}, '--dtype', 'INT8', 'hello']); "
            "print('policy', os.environ.get('OMP_WAIT_POLICY'), 'rc', rc, file=sys.stderr)")
    out = _run(code)
    assert "policy PASSIVE rc 0" in out.stderr
