"""fp32 vs bf16 vs int8, each with unpadded (default) and padded batches, interleaved round by round in one process.

Interleaving makes the ratios robust to a machine whose load drifts during the run: every round times every variant
once, in turn, and the figure per variant is the median over rounds; each ratio is the median of the per-round
ratios to ``float32`` (unpadded). The int8 model is loaded first, so OpenMP's idle workers sleep for every variant
(``jinav3.runtime.openmp``), as they do in an int8 deployment.

    python benchmarks/bench_precision.py --layers 4 --rounds 5 --json benchmarks/results/precision.json

bf16 is only worth measuring on a CPU with native bf16 (AVX512-BF16/AMX); elsewhere it is emulated and several times
slower, and the table's title says which CPU it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from jinav3.runtime import openmp

openmp.prepare("int8")  # before torch is imported (by _common): OpenMP's idle workers sleep, as in int8 deployments

import numpy as np  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import full_width_checkpoint, length_mix, print_table, write_json  # noqa: E402

from jinav3 import Embedder  # noqa: E402
from jinav3.runtime.hardware import cpu_features  # noqa: E402

TASK = "retrieval.passage"
VARIANTS = {  # name -> Embedder.local options; int8 first (see the module docstring)
    "int8": {"dtype": "int8"},
    "int8-padded": {"dtype": "int8", "unpadded": False},
    "float32": {"dtype": "float32"},
    "float32-padded": {"dtype": "float32", "unpadded": False},
    "bfloat16": {"dtype": "bfloat16"},
    "bfloat16-padded": {"dtype": "bfloat16", "unpadded": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="model depth (24 = real)")
    parser.add_argument("--n", type=int, default=40, help="texts in the length mix")
    parser.add_argument("--doc-max", type=int, default=1500, help="longest documents in the mix, in tokens")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from " + ", ".join(VARIANTS))
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    folder = full_width_checkpoint(args.layers)
    texts = length_mix(Tokenizer.from_file(str(folder / "tokenizer.json")), args.n, doc_range=(1000, args.doc_max))
    models = {}
    for name in sorted(names, key=list(VARIANTS).index):
        print(f"loading {name} ...", file=sys.stderr, flush=True)
        models[name] = Embedder.local(str(folder), device="cpu", **VARIANTS[name])
        models[name].embed(texts[:2], TASK)  # warm-up
    tokens = sum(len(s) for s in models[names[0]].backend.encode_ids(texts, TASK, truncate=False))
    seconds: dict[str, list[float]] = {n: [] for n in names}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for name in names:
            start = time.perf_counter()
            vectors[name] = models[name].embed(texts, TASK)
            seconds[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {seconds[n][-1]:.1f} s" for n in names),
              file=sys.stderr, flush=True)
    base = "float32" if "float32" in names else names[0]
    rows, payload = [], {}
    for name in names:
        ratio = statistics.median(b / s for b, s in zip(seconds[base], seconds[name], strict=True))
        cos = float(np.min(np.sum(vectors[name] * vectors[base], axis=1)))
        payload[name] = {"tokens_per_s": tokens / statistics.median(seconds[name]), "ratio": ratio,
                         "min_cosine": cos, "seconds": seconds[name]}
        rows.append([name, payload[name]["tokens_per_s"], ratio, round(cos, 6)])
    where = cpu_features().describe()
    print_table(f"{args.n} texts ({tokens} tokens; 20% ~16 tok, 60% 100-500, 20% 1000-{args.doc_max}), full width, "
                f"{args.layers} layers, {args.rounds} interleaved rounds, medians; {where}",
                ["variant", "tok/s", f"x {base} (median of rounds)", f"min cos vs {base}"], rows)
    write_json(args.json, {"benchmark": "precision", "layers": args.layers, "n": args.n, "tokens": tokens,
                           "rounds": args.rounds, "results": payload})


if __name__ == "__main__":
    main()
