"""Throughput by sequence length: ours (fp32, bf16) vs the model-card baseline (eager fp32), equal-length batches.

    python benchmarks/bench_by_length.py --layers 4 --json benchmarks/results/by_length.json
    python scripts/plots/plot_throughput.py          # -> docs/img/throughput_by_length.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import full_width_checkpoint, print_table, timed, write_json
from bench_throughput import TASK, baseline_module

from jinav3 import Embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--lengths", default="16,64,256,1024,2048")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per measurement")
    parser.add_argument("--json")
    args = parser.parse_args()
    folder = full_width_checkpoint(args.layers)
    fp32 = Embedder.local(str(folder), device="cpu", dtype="float32").backend
    bf16 = Embedder.local(str(folder), device="cpu", dtype="bfloat16").backend
    baseline = baseline_module(folder)
    task_id = fp32._task_id(TASK)
    rows, payload = [], {}
    for length in (int(x) for x in args.lengths.split(",")):
        n = max(1, args.tokens // length)
        ids = np.random.default_rng(length).integers(5, 500, size=(n, length))
        ids[:, 0], ids[:, -1] = 0, 2
        sequences = list(ids)

        def run_baseline(ids: np.ndarray = ids) -> None:
            for i in range(0, len(ids), 32):
                batch = torch.from_numpy(ids[i : i + 32])
                with torch.inference_mode():
                    baseline(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state.mean(1)

        figures = {}
        for name, fn in (
            ("baseline", run_baseline),
            ("float32", lambda s=sequences: fp32.embed_ids(s, [task_id] * len(s))),
            ("bfloat16", lambda s=sequences: bf16.embed_ids(s, [task_id] * len(s))),
        ):
            fn()
            seconds, _ = timed(fn, repeat=2)
            figures[name] = n * length / seconds
        payload[str(length)] = figures
        rows.append([length, n, *figures.values(), figures["float32"] / figures["baseline"],
                     figures["bfloat16"] / figures["baseline"]])
    print_table(f"tokens/s by sequence length ({args.layers} layers, full width, {torch.get_num_threads()} threads)",
                ["length", "seqs", "baseline", "ours fp32", "ours bf16", "fp32 x", "bf16 x"], rows)
    write_json(args.json, {"benchmark": "by_length", "layers": args.layers, "tokens_per_s": payload})


if __name__ == "__main__":
    main()
