"""What the machine can run fast, so the local backend picks its precision by capability, not by habit.

bf16 pays only where the CPU has bf16 dot-product instructions (AVX512-BF16, AMX-BF16); elsewhere torch emulates
it and a forward pass is 3-6x *slower* than fp32 (measured on an AVX2-only EPYC). int8 gains most with VNNI
(AVX512-VNNI, AVX-VNNI, AMX-INT8); without it int8 kernels must avoid saturating 16-bit intermediate sums, which
is why :mod:`jinav3.quantization` then keeps weights to 7 bits.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from jinav3.errors import PerformanceWarning

_NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
_VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")
_SHOWN = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "neon", "asimd")


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's name, torch's vector capability (``AVX2``, ``AVX512``, ...) and the relevant instruction flags."""

    model: str
    capability: str
    flags: frozenset[str]
    threads: int

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in _NATIVE_BF16)

    @property
    def vnni(self) -> bool:
        return any(f in self.flags for f in _VNNI)

    def describe(self) -> str:
        """One line for benchmark tables and docs, e.g. ``AMD EPYC, 2 threads, AVX2 (avx2 fma; no native bf16,
        no VNNI)``."""
        shown = [f for f in _SHOWN if f in self.flags]
        notes = ["native bf16" if self.native_bf16 else "no native bf16", "VNNI" if self.vnni else "no VNNI"]
        return (f"{self.model}, {self.threads} threads, {self.capability} "
                f"({' '.join(shown) or 'flags unknown'}; {', '.join(notes)})")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` from the text of ``/proc/cpuinfo`` (x86 ``flags``, ARM ``Features``)."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's CPU features (cached: they do not change while the process runs)."""
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:  # not Linux: torch's capability still tells AVX2 from AVX512
        model, flags = "", frozenset()
    capability = torch.backends.cpu.get_cpu_capability()
    return CpuFeatures(model or platform.processor() or platform.machine(), capability, flags,
                       torch.get_num_threads() or os.cpu_count() or 1)


def auto_dtype(device: torch.device, cpu: CpuFeatures | None = None) -> torch.dtype:
    """bf16 on CUDA devices that support it and on CPUs with native bf16; fp32 everywhere else (never fp16 on a
    CPU: its matmuls are ~100x slower than fp32 there)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and (cpu or cpu_features()).native_bf16:
        return torch.bfloat16
    return torch.float32


def slow_dtype_reason(dtype: torch.dtype, device: torch.device, cpu: CpuFeatures | None = None) -> str | None:
    """Why ``dtype`` would be slow on ``device`` (emulated bf16, fp16 on a CPU), or None when it is fine."""
    if device.type != "cpu":
        return None
    cpu = cpu or cpu_features()
    if dtype == torch.bfloat16 and not cpu.native_bf16:
        return (f"bfloat16 on this CPU ({cpu.capability}, no AVX512-BF16/AMX) is emulated and several times slower "
                "than float32; use dtype='float32' (default here) or dtype='int8'")
    if dtype == torch.float16:
        return "float16 matmuls on a CPU are ~100x slower than float32; use dtype='float32' or dtype='int8'"
    return None


def warn_if_slow(dtype: torch.dtype, device: torch.device, cpu: CpuFeatures | None = None) -> None:
    """Emit a :class:`jinav3.errors.PerformanceWarning` when the user asked for a dtype this machine emulates."""
    reason = slow_dtype_reason(dtype, device, cpu)
    if reason:
        warnings.warn(reason, PerformanceWarning, stacklevel=3)
