"""int8 on several CPU threads needs OpenMP's idle workers to sleep, not spin. Torch-free: it must act before torch
is imported.

Why: the int8 Linear layers (:mod:`jinav3.model.int8`) run ONNX Runtime over row blocks on a Python thread pool,
between torch ops that run on torch's OpenMP team. After every torch op, GNU OpenMP (torch's backend on Linux)
keeps its workers spinning for a while; on a machine with as many threads as cores, a spinning worker shares its
core with the pool thread running an int8 block, which then takes up to 1.5x as long as the block on the main
thread. ``OMP_WAIT_POLICY=PASSIVE`` puts idle workers to sleep at once. Measured on the 2-core AVX2 machine,
4-layer full-width model, 40 texts of 16-1000 tokens, 2 threads: int8 took 8.4-8.8 s with the default policy and
6.7 s with ``PASSIVE``, fp32 10.4 s with either (so fp32 loses nothing to it).

libgomp reads the policy once, when torch loads it; set later, it changes nothing. So :func:`prepare` sets it (only
where the user has not) when int8 is asked for before torch is imported, and :func:`spin_warning` says what to do
when torch came first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from jinav3.runtime.settings import LOCAL_DTYPES

WAIT_POLICY = "OMP_WAIT_POLICY"


def wants_sleeping_workers(dtype: object) -> bool:
    """True for the precisions whose kernels run beside torch's OpenMP team (int8). An unknown name is not one:
    the backend refuses it, with the valid names, when it loads."""
    return isinstance(dtype, str) and LOCAL_DTYPES.get(dtype.lower()) == "int8"


def environment(dtype: object, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus ``OMP_WAIT_POLICY=PASSIVE`` where ``dtype`` needs it and ``base`` does not choose a policy:
    the environment to start a process that will run ``dtype``."""
    env = dict(base)
    if wants_sleeping_workers(dtype):
        env.setdefault(WAIT_POLICY, "PASSIVE")
    return env


def prepare(dtype: object) -> None:
    """Before loading a model in ``dtype`` in this process: set the OpenMP wait policy it needs, if torch is not
    imported yet and the user has not chosen one."""
    if "torch" not in sys.modules and wants_sleeping_workers(dtype):
        os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def spin_warning(dtype: object, threads: int) -> str | None:
    """Why ``dtype`` on ``threads`` threads will be slow in this process, or None when it will not."""
    if not wants_sleeping_workers(dtype) or threads < 2 or os.environ.get(WAIT_POLICY, "").upper() == "PASSIVE":
        return None
    return (f"dtype='int8' on {threads} threads with OpenMP workers that spin between torch ops: the int8 layers run "
            "about a third slower (1.2x instead of 1.55x fp32 on 2 AVX2 cores). Set OMP_WAIT_POLICY=PASSIVE in the "
            "environment before torch is imported (jinav3 does it itself when it loads an int8 model first), or use "
            "one thread per process")
