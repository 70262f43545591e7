"""benchmarks/compact_eval.py end to end on the synthetic towns set with the tiny checkpoint: the float and the
binary-alone figures are the harness's own (every chunk a hit), rescoring with every chunk a candidate is the float
figure, and it writes its JSON and plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compact_figures_agree_with_the_harness(tiny_checkpoint, tmp_path):
    subprocess.run([sys.executable, "-m", "jinav3.evaluation.synthetic", str(tmp_path / "towns"), "--towns", "6"],
                   check=True, capture_output=True)
    out, plot = tmp_path / "compact.json", tmp_path / "compact.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compact_eval.py"), str(tmp_path / "towns"), "--model",
         str(tiny_checkpoint), "--widths", "16", "32", "--hits", "1000", "--latency-queries", "2", "--cache-dir",
         str(tmp_path / "cache"), "-o", str(out), "--plot", str(plot)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "binary + rescore 4x" in done.stdout and plot.stat().st_size > 0
    report = json.loads(out.read_text())
    harness = report["harness_ndcg@10"]["late:sentences"]
    rows = {(r["width"], r["method"]): r for r in report["rows"]}
    for width in (16, 32):
        assert rows[width, "float"]["ndcg@10"] == harness["float"][str(width)]
        assert rows[width, "binary alone"]["ndcg@10"] == harness["binary"][str(width)]
        assert rows[width, "binary + rescore 2x"]["ndcg@10"] == rows[width, "float"]["ndcg@10"]
        assert [rows[width, m]["searched_bytes"] for m in ("float", "int8", "binary alone")] == [
            4 * width, width, width // 8]
        assert rows[width, "binary + rescore 4x"]["stored_bytes"] == width // 8 + 2 * width
