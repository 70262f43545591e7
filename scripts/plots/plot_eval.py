"""PNG plots from ``jinav3 eval`` reports: nDCG naive vs late chunking, and nDCG by Matryoshka dimension.

    python scripts/plots/plot_eval.py docs/results/towns-minilm.json --out docs/img
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jinav3.models import display_name


def _title(report: dict) -> str:
    return f"{report['dataset']} ({report['documents']} docs, {report['queries']} queries), {_model(report)}"


def _model(report: dict) -> str:
    """The model's name, not the last folder of a path (the bundled MiniLM lives in a folder called "model")."""
    return display_name(str(report["model"].get("model"))).split(" (")[0]  # without "(bundled by ...)"


def plot_naive_vs_late(report: dict, out: Path) -> Path:
    """Grouped bars: nDCG@10 of naive and late chunking per chunker, with the whole-document line."""
    results = report["results"]
    chunkers = [r["chunker"] for r in results.values() if r["setting"] == "naive"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for offset, setting in ((-0.2, "naive"), (0.2, "late")):
        values = [100 * results[f"{setting}:{c}"]["metrics"]["ndcg@10"] for c in chunkers]
        bars = ax.bar([i + offset for i in range(len(chunkers))], values, width=0.4, label=f"{setting} chunking")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    if "whole" in results:
        ax.axhline(100 * results["whole"]["metrics"]["ndcg@10"], color="grey", linestyle="--",
                   label="whole document")
    ax.set_xticks(range(len(chunkers)), chunkers)
    ax.set_ylabel("nDCG@10 (%)")
    ax.set_title(_title(report), fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = out / "ndcg-naive-vs-late.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_matryoshka(report: dict, out: Path) -> Path:
    """nDCG@10 against the vector width, one line per setting (full width included)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    full = report["full_dimensions"]
    for label, result in report["results"].items():
        dims = [*sorted(int(d) for d in result["by_dimension"]), full]
        values = [100 * result["by_dimension"][str(d)]["ndcg@10"] for d in dims[:-1]]
        ax.plot(dims, [*values, 100 * result["metrics"]["ndcg@10"]], marker="o", label=label)
    ax.set_xscale("log", base=2)
    widths = sorted({int(d) for r in report["results"].values() for d in r["by_dimension"]} | {full})
    ax.set_xticks(widths, [str(d) for d in widths])  # every measured width labelled, the full one (e.g. 384) too
    ax.minorticks_off()
    ax.set_xlabel("dimensions (log scale)")
    ax.set_ylabel("nDCG@10 (%)")
    ax.set_title(_title(report), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "ndcg-by-dimension.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="JSON written by jinav3 eval -o")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (plot_naive_vs_late(report, args.out), plot_matryoshka(report, args.out)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
