"""Throughput of ``Embedder.embed`` vs the baseline a user would write from the model card, side by side.

Baseline: transformers' ``JinaEmbeddingsV3Model`` with the task LoRA merged into its weights, the HF fast
tokenizer with ``padding=True``, fixed batches of 32 in input order, fp32, eager attention, mean pooling.
Ours: ``Embedder.local`` (SDPA, length-sorted token-budget batches, merged LoRA) in fp32 and bf16.

    python benchmarks/bench_throughput.py                      # real depth (24 layers): slow on a laptop CPU
    python benchmarks/bench_throughput.py --layers 4 --doc-max 1500 --json benchmarks/results/throughput.json

Each variant runs in its own subprocess so its peak memory is its own; the ratios come from one invocation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    flops_per_token,
    full_width_checkpoint,
    length_mix,
    matmul_roofline,
    peak_rss_mb,
    print_table,
    timed,
    write_json,
)

from jinav3 import Embedder
from jinav3.batching import token_budget_batches
from jinav3.lora import LoRAEmbedding, LoRALinear
from jinav3.tasks import DEFAULT_INSTRUCTIONS

TASK = "retrieval.passage"
INSTRUCTION = DEFAULT_INSTRUCTIONS[TASK]  # what a model-card user prepends by hand


def baseline_module(folder: Path) -> torch.nn.Module:
    """A plain native transformers model: eager attention, fp32, task LoRA merged into every weight."""
    backend = Embedder.local(str(folder), device="cpu", dtype="float32", attn_implementation="eager").backend
    module, t = backend._module, backend._task_id(TASK)
    for name, sub in list(module.named_modules()):
        if isinstance(sub, LoRALinear):
            sub._use(t)
            plain = sub.base
        elif isinstance(sub, LoRAEmbedding):
            plain = sub.base
            with torch.no_grad():
                plain.weight += (sub.lora_a[t] @ sub.lora_b[t]) * sub.scale
        else:
            continue
        parent, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent), child, plain)
    return module


def run_baseline(folder: Path, texts: list[str]) -> dict:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>")
    module = baseline_module(folder)
    padded = 0

    def embed() -> np.ndarray:
        nonlocal padded
        padded, out = 0, []
        for i in range(0, len(texts), 32):
            batch = tokenizer([INSTRUCTION + t for t in texts[i : i + 32]], padding=True, return_tensors="pt")
            padded += batch["input_ids"].numel()
            with torch.inference_mode():
                hidden = module(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        return np.concatenate(out)

    seconds, vectors = timed(embed)
    return {"seconds": seconds, "padded_tokens": padded, "vectors": vectors.tolist()}


def run_ours(folder: Path, texts: list[str], dtype: str) -> dict:
    emb = Embedder.local(str(folder), device="cpu", dtype=dtype)
    backend = emb.backend
    lengths = [len(s) for s in backend.encode_ids(texts, TASK, truncate=False)]
    batches = token_budget_batches(lengths, backend.token_budget, backend.max_batch)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    emb.embed(texts[:2], TASK)  # warm-up outside the timing (first-call allocations)
    seconds, vectors = timed(lambda: emb.embed(texts, TASK, normalized=False))
    return {"seconds": seconds, "padded_tokens": padded, "vectors": vectors.tolist()}


def child(args: argparse.Namespace) -> None:
    folder = full_width_checkpoint(args.layers)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    texts = length_mix(tokenizer, args.n, doc_range=(args.doc_min, args.doc_max))
    result = run_baseline(folder, texts) if args.variant == "baseline" else run_ours(folder, texts, args.variant)
    result["peak_rss_mb"] = peak_rss_mb()
    lengths = [len(enc.ids) for enc in tokenizer.encode_batch([INSTRUCTION + t for t in texts])]
    result["real_tokens"] = sum(lengths)
    result["flops"] = sum(flops_per_token(n, args.layers) * n for n in lengths)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24, help="model depth (24 = real; fewer for quick runs)")
    parser.add_argument("--n", type=int, default=40, help="number of texts in the length mix")
    parser.add_argument("--doc-min", type=int, default=1000)
    parser.add_argument("--doc-max", type=int, default=4000)
    parser.add_argument("--variants", default="baseline,float32,bfloat16")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return child(args)

    full_width_checkpoint(args.layers)
    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", variant, "--layers", str(args.layers), "--n", str(args.n),
               "--doc-min", str(args.doc_min), "--doc-max", str(args.doc_max)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
        print(f"{variant}: {results[variant]['seconds']:.1f} s", file=sys.stderr)

    roofline = {"float32": matmul_roofline(torch.float32), "bfloat16": matmul_roofline(torch.bfloat16)}
    reference = np.asarray(results.get("float32", next(iter(results.values())))["vectors"])
    base_seconds = results["baseline"]["seconds"] if "baseline" in results else None
    rows, payload = [], {}
    for variant, r in results.items():
        vectors = np.asarray(r["vectors"])
        cos = np.sum(vectors * reference, 1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
        flops = r["flops"] / r["seconds"]
        peak = roofline["bfloat16" if variant == "bfloat16" else "float32"]
        row = {
            "tokens_per_s": r["real_tokens"] / r["seconds"],
            "docs_per_s": args.n / r["seconds"],
            "real_token_fraction": r["real_tokens"] / r["padded_tokens"],
            "peak_rss_mb": r["peak_rss_mb"],
            "gflops": flops / 1e9,
            "roofline_fraction": flops / peak,
            "speedup_vs_baseline": (base_seconds / r["seconds"]) if base_seconds else float("nan"),
            "min_cosine_vs_fp32": round(float(cos.min()), 6),
        }
        payload[variant] = row
        rows.append([variant, *row.values()])
    print_table(
        f"Embedder.embed throughput: {args.n} texts (20% ~16 tok, 60% 100-500, 20% {args.doc_min}-{args.doc_max}), "
        f"full width, {args.layers} layers, {torch.get_num_threads()} threads; roofline fp32 "
        f"{roofline['float32'] / 1e9:.0f} GF/s, bf16 {roofline['bfloat16'] / 1e9:.0f} GF/s",
        ["variant", "tok/s", "docs/s", "real-token frac", "peak RSS MB", "GFLOP/s", "of roofline", "x baseline",
         "min cos vs fp32"],
        rows,
    )
    write_json(args.json, {"benchmark": "throughput", "layers": args.layers, "n": args.n,
                           "doc_range": [args.doc_min, args.doc_max], "roofline_gflops":
                           {k: v / 1e9 for k, v in roofline.items()}, "results": payload})


if __name__ == "__main__":
    main()
