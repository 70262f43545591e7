"""Two choices in the graph engines, measured side by side: how ``jinav3 export-onnx`` traces attention (eager vs
SDPA), and the OpenVINO int8 activation group size.

1. Attention: one checkpoint exported twice (``export_onnx(..., attention="sdpa" | "eager")``); each graph's forward
   pass timed on fixed shapes, interleaved, with the engines' own settings: ONNX Runtime fp32, and OpenVINO bf16
   where the CPU has native bf16 (else fp32). Also the largest difference between the two graphs' outputs.
2. int8 activation groups: ``engine="openvino", dtype="int8"`` with ``activation_group`` 32, 64, 128 and 384,
   embedding the same texts (one-length batches, as shipped), interleaved: time, and min cosine to float32.

Ratios only on a shared machine; the CPU's features are printed with the figures.

    python benchmarks/bench_graph_choices.py --models minilm,jina --layers 4 --rounds 7 \
        --json benchmarks/results/graph_choices.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TASK = "retrieval.passage"
SHAPES = {"minilm": [(1, 250), (4, 230), (16, 250)], "jina": [(1, 1000), (4, 1000)]}
GROUPS = (32, 64, 128, 384)


def exports(which: str, layers: int) -> dict[str, Path]:
    """The model exported with each attention implementation (made once under the bench folder)."""
    from _common import BENCH_DIR, engine_checkpoint, exported_once

    source = engine_checkpoint(which, layers)
    return {attention: exported_once(source, BENCH_DIR / f"choices-{which}-{attention}-onnx", attention=attention)
            for attention in ("sdpa", "eager")}


def interleaved(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each callable, called in turn every round (after one warm-up call each)."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median_ratio(slow: list[float], fast: list[float]) -> float:
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))


def attention_choice(which: str, exports: dict[str, Path], rounds: int) -> list[dict]:
    from jinav3.backends.onnx_engine import OnnxBackend
    from jinav3.backends.openvino_engine import OpenVinoBackend
    from jinav3.runtime.hardware import cpu_features

    ov_dtype = "bfloat16" if cpu_features().native_bf16 else "float32"
    engines: list[tuple[str, Callable[[Path], Any]]] = [
        ("ONNX Runtime float32", lambda folder: OnnxBackend(folder, dtype="float32")),
        (f"OpenVINO {ov_dtype}", lambda folder: OpenVinoBackend(folder, dtype=ov_dtype)),
    ]
    rng = np.random.default_rng(0)
    rows = []
    for engine, make in engines:
        backends = {attention: make(folder) for attention, folder in exports.items()}
        for batch, length in SHAPES[which]:
            task_id = backends["eager"]._task_id(TASK) if backends["eager"].tasks else -1
            ids = rng.integers(1000, 20000, (batch, length))
            feeds = backends["eager"]._feeds(ids, np.ones_like(ids), task_id)
            outputs = {a: b._graph.forward(feeds) for a, b in backends.items()}
            seconds = interleaved({a: (lambda b=b, f=feeds: b._graph.forward(f)) for a, b in backends.items()}, rounds)
            row = {"model": which, "engine": engine, "shape": f"{batch}x{length}",
                   "sdpa_ms": 1e3 * statistics.median(seconds["sdpa"]),
                   "eager_ms": 1e3 * statistics.median(seconds["eager"]),
                   "eager_speedup": median_ratio(seconds["sdpa"], seconds["eager"]),
                   "max_abs_difference": float(np.abs(outputs["sdpa"] - outputs["eager"]).max())}
            rows.append(row)
            print(f"{which} {engine} {row['shape']}: sdpa {row['sdpa_ms']:.1f} ms, eager {row['eager_ms']:.1f} ms, "
                  f"eager {row['eager_speedup']:.2f}x, max |diff| {row['max_abs_difference']:.1e}",
                  file=sys.stderr, flush=True)
        for backend in backends.values():
            backend.close()
    return rows


def group_choice(which: str, folder: Path, n: int, rounds: int) -> list[dict]:
    from _common import engine_texts, unit

    from jinav3.backends.openvino_engine import OpenVinoBackend
    from jinav3.model.files import load_tokenizer

    texts = engine_texts(load_tokenizer(folder), which, n)
    reference = OpenVinoBackend(folder, dtype="float32")
    task = TASK if reference.tasks else None
    expected = unit(reference.embed(texts, task))
    reference.close()
    backends = {group: type(f"Group{group}", (OpenVinoBackend,), {"activation_group": group})(folder, dtype="int8")
                for group in GROUPS}
    seconds = interleaved({g: (lambda b=b: b.embed(texts, task)) for g, b in backends.items()}, rounds)
    rows = []
    for group, backend in backends.items():
        cosine = float(np.min(np.sum(unit(backend.embed(texts, task)) * expected, axis=1)))
        rows.append({"model": which, "activation_group": group, "ms": 1e3 * statistics.median(seconds[group]),
                     "speedup_vs_32": median_ratio(seconds[32], seconds[group]), "min_cosine_to_fp32": cosine})
        print(f"{which} int8 activation group {group}: {rows[-1]['ms']:.0f} ms, {rows[-1]['speedup_vs_32']:.2f}x "
              f"group 32, min cos {cosine:.5f}", file=sys.stderr, flush=True)
        backend.close()
    return rows


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import print_table, write_json

    from jinav3.runtime.hardware import cpu_features

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,jina", help="comma-separated: minilm, jina")
    parser.add_argument("--layers", type=int, default=4, help="depth of the full-width jina model (24 = real)")
    parser.add_argument("--n", type=int, default=30, help="texts for the int8 group comparison")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    attention_rows, group_rows = [], []
    for which in args.models.split(","):
        graphs = exports(which, args.layers)
        attention_rows += attention_choice(which, graphs, args.rounds)
        group_rows += group_choice(which, graphs["eager"], args.n, args.rounds)
    cpu = cpu_features().describe()
    print_table(f"export-onnx attention, forward pass medians over {args.rounds} interleaved rounds; {cpu}",
                ["model", "engine", "shape", "sdpa ms", "eager ms", "eager speed-up", "max |diff|"],
                [[r["model"], r["engine"], r["shape"], r["sdpa_ms"], r["eager_ms"], r["eager_speedup"],
                  f"{r['max_abs_difference']:.1e}"] for r in attention_rows])
    print_table(f"OpenVINO int8 activation group, {args.n} texts, medians over {args.rounds} rounds; {cpu}",
                ["model", "group", "ms", "x group 32", "min cos to fp32"],
                [[r["model"], r["activation_group"], r["ms"], r["speedup_vs_32"], round(r["min_cosine_to_fp32"], 5)]
                 for r in group_rows])
    write_json(args.json, {"benchmark": "graph_choices", "rounds": args.rounds, "attention": attention_rows,
                           "int8_groups": group_rows})


if __name__ == "__main__":
    main()
