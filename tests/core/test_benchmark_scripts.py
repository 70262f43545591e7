"""The roofline benchmark and the GPU check's CPU dry run, at tiny sizes, so neither script rots between the runs
that matter (a quiet machine; a lent GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "JINAV3_BENCH_DIR": str(tmp_path / "bench"), "OUT": str(tmp_path / "out"),
            "OMP_NUM_THREADS": "1"}


def test_roofline_measures_peaks_and_counts_flops_by_its_formula(tiny_checkpoint, tmp_path):
    figures = tmp_path / "roofline.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "roofline.py"), "--models", str(tiny_checkpoint), "--engines",
         "torch-fp32,openvino-int8", "--gemm", "64,64,64", "--plain-texts", "2", "--plain-tokens", "40",
         "--late-tokens", "200", "--repeat", "1", "--json", str(figures)],
        capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GEMM peaks" in done.stdout and "MFU" in done.stdout
    result = json.loads(figures.read_text())
    peaks = {g["precision"]: g["flops"] for g in result["gemm"] if g["flops"]}
    assert peaks["fp32"] > 0 and "int8" in peaks

    config = json.loads((tiny_checkpoint / "config.json").read_text())
    layers, hidden, ffn = config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]
    rows = {(r[1], r[2].split()[0]): r for r in result["engines"]}
    assert {engine for engine, _ in rows} == {"torch-fp32", "openvino-int8"}  # measured, or skipped saying why
    _, _, work, tokens_per_s, gflops, precision, peak, mfu, sequences, seconds = rows["torch-fp32", "plain"]
    n = int(work.split()[1])  # every plain text has the same length: FLOPs per token follow from the formula
    per_token = layers * (2 * (4 * hidden**2 + 2 * hidden * ffn) + 4 * n * hidden)
    assert gflops * 1e9 / tokens_per_s == pytest.approx(per_token, rel=1e-6)
    assert precision == "fp32" and mfu == pytest.approx(gflops / peak, rel=1e-6) and sequences == 2 and seconds > 0
    late = rows["torch-fp32", "late"]
    assert late[8] == 1 and late[3] > 0  # one window: 200 tokens fit the tiny model's context


def test_gpu_check_dry_run_runs_both_parts_on_the_cpu(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                          text=True, env={**_env(tmp_path), "GPU_CHECK_PYTHON": sys.executable}, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "what it has" in done.stdout and "cuda: False" in done.stdout
    for part, sequences in (("plain", 12), ("late", 2)):
        result = json.loads((tmp_path / "out" / f"gpu_check_{part}.json").read_text())
        assert result["part"] == part and result["device"] == "cpu" and result["sequences"] == sequences
        assert result["rows"]["jinav3"]["tokens_per_s"] > 0 and result["rows"]["jinav3"]["mfu"] is None
        st = result["rows"].get("sentence-transformers")
        assert st is None or st["tokens_per_s"] > 0
