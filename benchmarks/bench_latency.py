"""Single-query latency: ``Embedder.embed_query`` on one 16-token query vs a bare forward pass of the same tokens.

    python benchmarks/bench_latency.py --layers 24 --dtype bfloat16 --json benchmarks/results/latency.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import full_width_checkpoint, print_table, text_of_tokens, write_json

from jinav3 import Embedder


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)) * 1e3, float(np.percentile(samples, 95)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json")
    args = parser.parse_args()
    folder = full_width_checkpoint(args.layers)
    rows, payload = [], {}
    for dtype in args.dtypes.split(","):
        emb = Embedder.local(str(folder), device="cpu", dtype=dtype)
        backend = emb.backend
        query = text_of_tokens(backend.tokenizer, 16, 7)  # 16 query tokens; the instruction comes on top
        ids = backend.encode_ids([query], "retrieval.query", truncate=False)[0]
        input_ids = torch.from_numpy(ids[None])
        mask = torch.ones_like(input_ids)
        backend._selection.use(backend._task_id("retrieval.query"))

        def bare(module: torch.nn.Module = backend._module, ids: torch.Tensor = input_ids,
                 mask: torch.Tensor = mask) -> None:
            with torch.inference_mode():
                module(input_ids=ids, attention_mask=mask)

        def full(emb: Embedder = emb, query: str = query) -> None:
            emb.embed_query(query)

        samples: dict[str, list[float]] = {"bare": [], "embed_query": []}
        for fn in (bare, full):
            fn()  # warm-up (task merge, allocator)
        for _ in range(args.repeat):  # interleaved so both see the same machine load
            for name, fn in (("bare", bare), ("embed_query", full)):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
        bare_p50, bare_p95 = percentiles(samples["bare"])
        p50, p95 = percentiles(samples["embed_query"])
        payload[dtype] = {"tokens": len(ids), "bare_p50_ms": bare_p50, "bare_p95_ms": bare_p95, "p50_ms": p50,
                          "p95_ms": p95, "overhead_ratio_p50": p50 / bare_p50}
        rows.append([dtype, len(ids), bare_p50, bare_p95, p50, p95, p50 / bare_p50])
    print_table(f"one query ({args.layers} layers, full width, {torch.get_num_threads()} threads), ms",
                ["dtype", "tokens", "bare p50", "bare p95", "embed_query p50", "embed_query p95", "p50 ratio"], rows)
    write_json(args.json, {"benchmark": "latency", "layers": args.layers, "results": payload})


if __name__ == "__main__":
    main()
