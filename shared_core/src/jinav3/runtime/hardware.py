"""What the machine can run fast, so the local backend picks its precision by capability, not by habit.

bf16 pays only where the CPU has bf16 dot-product instructions (AVX512-BF16, AMX-BF16); elsewhere torch emulates
it and a forward pass is 3-6x *slower* than fp32 (measured on an AVX2-only EPYC). int8 gains most with VNNI
(AVX512-VNNI, AVX-VNNI, AMX-INT8); without it int8 kernels must avoid saturating 16-bit intermediate sums, which
is why :mod:`jinav3.model.int8` then keeps weights to 7 bits.

``JINAV3_CPU_CLASS`` makes these choices as if the CPU were of another class (``avx2``, ``avx512``, ``avx512-vnni``,
``native-bf16``; ``host`` or unset: this CPU), so a test suite or a deployment can check the other class's code
paths on the machine it has. It changes what is *chosen*, never what the CPU executes: bf16 chosen as on a
native-bf16 CPU still runs emulated (slowly, and correctly) on an AVX2-only one.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jinav3.errors import InvalidInputError, PerformanceWarning

if TYPE_CHECKING:  # torch only where a torch dtype is chosen: the ONNX engine reads CPU flags without it
    import torch

_NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
_VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")
#: Simulated CPU classes (``JINAV3_CPU_CLASS``): torch's capability name and the flags that class has; each class
#: adds to the one before it.
_AVX2 = frozenset({"avx2", "fma"})
_AVX512 = _AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
CPU_CLASSES: dict[str, tuple[str, frozenset[str]]] = {
    "avx2": ("AVX2", _AVX2),
    "avx512": ("AVX512", _AVX512),
    "avx512-vnni": ("AVX512", _AVX512 | {"avx512_vnni"}),
    "native-bf16": ("AVX512", _AVX512 | {"avx512_vnni", "avx512_bf16"}),
}
CPU_CLASS_VARIABLE = "JINAV3_CPU_CLASS"
_SHOWN = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "neon", "asimd")


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's name, torch's vector capability (``AVX2``, ``AVX512``, ...) and the relevant instruction flags."""

    model: str
    capability: str
    flags: frozenset[str]
    threads: int
    simulated: str | None = None  # the JINAV3_CPU_CLASS these features stand for, None for the real CPU

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
        line = (f"{self.model}, {self.threads} threads, {self.capability} "
                f"({' '.join(shown) or 'flags unknown'}; {', '.join(notes)})")
        return f"{line} [simulated: {CPU_CLASS_VARIABLE}={self.simulated}]" if self.simulated else line


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


def simulated_class(environ: Mapping[str, str] | None = None) -> str | None:
    """The CPU class ``JINAV3_CPU_CLASS`` asks for, None for the host's own; an unknown name is an error that lists
    the valid ones (a typo must not silently test the host's class)."""
    value = (os.environ if environ is None else environ).get(CPU_CLASS_VARIABLE, "").strip().lower()
    if value in ("", "host"):
        return None
    if value not in CPU_CLASSES:
        raise InvalidInputError(f"{CPU_CLASS_VARIABLE}={value!r} is not a CPU class; use one of "
                                f"{', '.join(CPU_CLASSES)} or 'host'")
    return value


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's CPU features, or those of the class ``JINAV3_CPU_CLASS`` names (cached: read once per
    process; :func:`reset` forgets them)."""
    simulated = simulated_class()
    if simulated:
        capability, flags = CPU_CLASSES[simulated]
        return CpuFeatures(f"simulated {simulated} CPU", capability, flags, _torch_capability()[1], simulated)
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:  # not Linux: torch's capability still tells AVX2 from AVX512
        model, flags = "", frozenset()
    capability, threads = _torch_capability()
    return CpuFeatures(model or platform.processor() or platform.machine(), capability, flags, threads)


def _torch_capability() -> tuple[str, int]:
    """torch's vector capability and thread count; without torch (the ONNX engine's install) ``no torch`` and the
    CPU count."""
    try:
        import torch
    except ImportError:
        return "no torch", os.cpu_count() or 1
    return torch.backends.cpu.get_cpu_capability(), torch.get_num_threads() or os.cpu_count() or 1


def reset() -> None:
    """Forget the cached features, so a changed ``JINAV3_CPU_CLASS`` is read again (tests)."""
    cpu_features.cache_clear()


def auto_dtype(device: torch.device, cpu: CpuFeatures | None = None) -> torch.dtype:
    """bf16 on CUDA devices that support it and on CPUs with native bf16; fp32 everywhere else (never fp16 on a
    CPU: its matmuls are ~100x slower than fp32 there)."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and (cpu or cpu_features()).native_bf16:
        return torch.bfloat16
    return torch.float32


def slow_dtype_reason(dtype: torch.dtype, device: torch.device, cpu: CpuFeatures | None = None) -> str | None:
    """Why ``dtype`` would be slow on ``device`` (emulated bf16, fp16 on a CPU), or None when it is fine."""
    import torch

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
