"""PNG of throughput by sequence length (ours fp32/bf16 vs the model-card baseline) from bench_by_length's JSON.

    python scripts/plots/plot_throughput.py benchmarks/results/by_length.json --out docs/img
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {"baseline": "baseline (eager fp32, batches of 32)", "float32": "jinav3 fp32", "bfloat16": "jinav3 bf16"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, nargs="?", default=Path("benchmarks/results/by_length.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    lengths = sorted(int(n) for n in report["tokens_per_s"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for variant, label in LABELS.items():
        ax.plot(lengths, [report["tokens_per_s"][str(n)][variant] for n in lengths], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("tokens / s")
    ax.set_title(f"Full-width jina-v3 architecture, {report['layers']} layers, "
                 f"{report['machine']['threads']} CPU threads", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "throughput_by_length.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
