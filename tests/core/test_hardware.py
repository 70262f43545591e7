"""Precision chosen by hardware: flag parsing, the automatic dtype, the warning for emulated bf16, dtype names."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jinav3 import Embedder, InvalidInputError, PerformanceWarning
from jinav3.runtime.hardware import (
    CPU_CLASS_VARIABLE,
    CPU_CLASSES,
    CpuFeatures,
    auto_dtype,
    cpu_features,
    parse_cpuinfo,
    simulated_class,
    slow_dtype_reason,
)
from jinav3.runtime.settings import LOCAL_DTYPES, backend_options, check_dtype

pytestmark = pytest.mark.cpu_class  # every choice here follows the CPU class

RELEVANT = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "amx_int8", "sse4_2"]
flag_sets = st.sets(st.sampled_from(RELEVANT) | st.from_regex(r"[a-z][a-z0-9_]{1,10}", fullmatch=True), max_size=12)
CPU = torch.device("cpu")


@settings(max_examples=40, deadline=None)
@given(flags=flag_sets, model=st.from_regex(r"[A-Za-z][A-Za-z0-9 ()@.-]{0,30}", fullmatch=True),
       cores=st.integers(1, 4))
def test_cpuinfo_flags_decide_bf16_and_vnni(flags, model, cores):
    block = f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {' '.join(sorted(flags))}\n\n"
    name, parsed = parse_cpuinfo(block * cores)
    assert parsed == frozenset(flags)
    assert name == model.strip()
    cpu = CpuFeatures(name, "AVX2", parsed, 2)
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    assert cpu.native_bf16 is native
    assert cpu.vnni is bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
    assert auto_dtype(CPU, cpu) == (torch.bfloat16 if native else torch.float32)
    assert (slow_dtype_reason(torch.bfloat16, CPU, cpu) is None) is native
    assert slow_dtype_reason(torch.float32, CPU, cpu) is None
    assert slow_dtype_reason(torch.float16, CPU, cpu) is not None  # never fp16 on a CPU
    assert slow_dtype_reason(torch.bfloat16, torch.device("meta"), cpu) is None  # only CPUs are judged
    line = cpu.describe()
    assert "AVX2" in line and ("native bf16" in line) and ("VNNI" in line)


def test_this_machine_is_described():
    cpu = cpu_features()
    real = torch.backends.cpu.get_cpu_capability()
    assert cpu.capability == (CPU_CLASSES[cpu.simulated][0] if cpu.simulated else real)
    assert cpu.capability in cpu.describe()


def test_backend_warns_only_where_bf16_is_emulated(tiny_checkpoint):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = Embedder.local(str(tiny_checkpoint), device="cpu", dtype="bf16")
    slow = [w for w in caught if issubclass(w.category, PerformanceWarning)]
    assert bool(slow) is (not cpu_features().native_bf16)
    assert emb.backend.dtype == torch.bfloat16  # an explicit choice is honoured
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        auto = Embedder.local(str(tiny_checkpoint), device="cpu")  # the automatic choice never warns
    assert auto.backend.dtype == auto_dtype(CPU)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(LOCAL_DTYPES)), flips=st.lists(st.booleans(), min_size=8, max_size=8))
def test_dtype_names_any_case(name, flips):
    mixed = "".join(c.upper() if f else c for c, f in zip(name, flips * 2, strict=False))
    assert check_dtype(mixed) == LOCAL_DTYPES[name]
    assert backend_options("local", {"dtype": mixed}) == {"dtype": mixed}


@settings(max_examples=30, deadline=None)
@given(name=st.text(min_size=1, max_size=12).filter(lambda s: s.lower() not in LOCAL_DTYPES))
def test_unknown_dtype_is_refused_by_the_settings_check(name):
    with pytest.raises(InvalidInputError, match="unknown dtype"):
        backend_options("local", {"dtype": name})


@pytest.mark.parametrize("name", sorted(CPU_CLASSES))
def test_a_simulated_cpu_class_decides_like_that_class(monkeypatch, name):
    """JINAV3_CPU_CLASS makes dtype and int8 weight-range choices as that class would, and says so."""
    from jinav3.model import int8 as quantization
    from jinav3.runtime import hardware

    monkeypatch.setenv(CPU_CLASS_VARIABLE, name.upper())  # any case
    hardware.reset()
    try:
        cpu = cpu_features()
        assert cpu.simulated == name and f"{CPU_CLASS_VARIABLE}={name}" in cpu.describe()
        assert cpu.native_bf16 is (name == "native-bf16")
        assert cpu.vnni is (name in ("avx512-vnni", "native-bf16"))
        assert auto_dtype(CPU) == (torch.bfloat16 if name == "native-bf16" else torch.float32)
        assert quantization.default_reduce_range() is (not cpu.vnni)
    finally:
        monkeypatch.undo()  # back to the session's own class (a second pass may simulate one)
        hardware.reset()


def test_host_or_unset_means_this_cpu_and_a_typo_is_refused(monkeypatch):
    from jinav3.runtime import hardware

    monkeypatch.setenv(CPU_CLASS_VARIABLE, "host")
    assert simulated_class() is None
    assert simulated_class({}) is None
    with pytest.raises(InvalidInputError, match="avx2, avx512, avx512-vnni, native-bf16"):
        simulated_class({CPU_CLASS_VARIABLE: "avx-512"})
    monkeypatch.undo()
    hardware.reset()
