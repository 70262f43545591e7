"""PNG plots from ``jinav3 eval`` reports: nDCG@10 by chunk size per setting, and quality against storage.

    python scripts/plots/plot_eval.py docs/results/scifact-minilm.json --model-label all-MiniLM-L6-v2 \\
        --setting late:sentences --extra "docs/results/scifact-minilm-int8.json=int8 model" --out docs/img

Writes ``<name>-ndcg-by-chunk-size.png`` and ``<name>-storage-vs-quality.png`` (``--name``, default the data set's
name) and prints the report's Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jinav3.evaluation import bytes_per_vector, format_report
from jinav3.model.choice import display_name


def _title(report: dict, model: str, what: str) -> str:
    return f"{what}: {report['dataset']} ({report['documents']} docs, {report['queries']} queries), {model}"


def _chunk_order(label: str) -> tuple[int, int]:
    match = re.fullmatch(r"tokens(\d+)", label)
    return (0, int(match.group(1))) if match else (1, 0)


def plot_by_chunk_size(report: dict, model: str, out: Path) -> Path:
    """nDCG@10 per chunking (token sizes ascending, then sentences/paragraphs), one line per setting; the
    unchunked whole document as a dashed line."""
    results = report["results"]
    labels = sorted({r["chunker"] for r in results.values() if r["chunker"]}, key=_chunk_order)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for setting in ("naive", "late"):
        points = [(i, 100 * results[f"{setting}:{c}"]["metrics"]["ndcg@10"]) for i, c in enumerate(labels)
                  if f"{setting}:{c}" in results]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"{setting} chunking")
            for x, y in points:
                ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    if "whole" in results:
        ax.axhline(100 * results["whole"]["metrics"]["ndcg@10"], color="grey", linestyle="--",
                   label="whole document (no chunking)")
    ax.set_xticks(range(len(labels)), [c.removeprefix("tokens") + (" tokens" if c.startswith("tokens") else "")
                                       for c in labels])
    ax.set_xlabel("chunks")
    ax.set_ylabel("nDCG@10 (%)")
    ax.set_title(_title(report, model, "nDCG@10 by chunk size"), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"{report['dataset']}-ndcg-by-chunk-size.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _curve(result: dict, etype: str) -> list[tuple[int, float]]:
    by_dim = result["scores"].get(etype, {})
    return [(bytes_per_vector(int(d), etype), 100 * by_dim[d]["ndcg@10"]) for d in sorted(by_dim, key=int)]


def plot_storage(report: dict, setting: str, model: str, out: Path, extra: list[tuple[dict, str]]) -> Path:
    """nDCG@10 against bytes per vector: float32 at each Matryoshka size, binary codes at each size, and the
    float32 curve of any extra report (for instance the same run with an int8 model)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    result = report["results"][setting]
    for etype, name in (("float", "float32 vectors"), ("binary", "binary codes (Hamming)")):
        points = _curve(result, etype)
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
            dims = sorted(result["scores"][etype], key=int)
            for (x, y), d in zip(points, dims, strict=True):
                ax.annotate(d, (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    for other, label in extra:
        points = _curve(other["results"][setting], "float")
        ax.plot(*zip(*points, strict=True), marker="s", linestyle=":", label=f"float32 vectors, {label}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector (log scale; labels: dimensions)")
    ax.set_ylabel("nDCG@10 (%)")
    ax.set_title(_title(report, model, f"{setting}, storage vs quality"), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"{report['dataset']}-storage-vs-quality.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="JSON written by jinav3 eval -o")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--model-label", help="model name for the titles (default: the report's model)")
    parser.add_argument("--setting", default="late:sentences", help="result plotted against storage")
    parser.add_argument("--extra", action="append", default=[], metavar="REPORT=LABEL",
                        help="another report (e.g. an int8 model) whose float curve joins the storage plot")
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    # a readable name ("all-MiniLM-L6-v2"), never a filesystem path
    model = args.model_label or display_name(str(report["model"].get("model"))).split(" (")[0]
    extra = []
    for item in args.extra:
        path, _, label = item.partition("=")
        extra.append((json.loads(Path(path).read_text(encoding="utf-8")), label or Path(path).stem))
    args.out.mkdir(parents=True, exist_ok=True)
    print(format_report(report))
    print(f"wrote {plot_by_chunk_size(report, model, args.out)}")
    if args.setting in report["results"] and len(report["results"][args.setting]["scores"]["float"]) > 1:
        print(f"wrote {plot_storage(report, args.setting, model, args.out, extra)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
