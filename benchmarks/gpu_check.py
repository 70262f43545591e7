"""The measurements of ``gpu_check.sh``: ours beside sentence-transformers on the same device and weights.

    python benchmarks/gpu_check.py plain --json plain.json    # <=512-token passages, bf16: tokens/s and MFU
    python benchmarks/gpu_check.py late --json late.json      # 8,192-token documents: late chunking tokens/s and MFU
    python benchmarks/gpu_check.py plain --model tiny --device cpu --texts 8 --max-tokens 48   # a dry run

``plain``: ``--texts`` passages of ``--min-tokens`` to ``--max-tokens`` tokens; ours (``Embedder.embed``, bf16; on
CUDA unpadded batches) and sentence-transformers (``encode``, batches of 32, SDPA, bf16 on CUDA, on the same model
with the passage LoRA merged, saved as a plain transformers folder: ``bench_throughput.native_folder``).
``late``: ``--docs`` documents of ``--doc-tokens`` tokens; ours late-chunks them into 256-token chunks
(``Embedder.late_chunk_many``), sentence-transformers encodes each whole document (the same forward pass; it
has no late chunking). Texts repeat a few distinct ones (generating thousands of exact-length texts would take
longer than the check).

FLOPs per sequence of n tokens (instruction and special tokens included), L layers, width h, FFN f:
``L x (2 x (4h^2 + 2hf) x n + 4 x n^2 x h)``; MFU = FLOP/s over the GPU's dense bf16 peak (``--peak-tflops``, else
from the GPU's name: ``_common.GPU_BF16_PEAK_TFLOPS``). No MFU on the CPU (see ``roofline.py`` for CPU peaks).
``--model``: ``jina`` (the full-width architecture, ``--layers`` deep, random weights, built once under the bench
folder) or ``tiny`` (the test suite's 2-layer checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import BENCH_DIR, flops_per_token, full_width_checkpoint, gpu_peak_flops, print_table, text_of_tokens

from jinav3 import Embedder
from jinav3.model.files import read_config
from jinav3.tasks import DEFAULT_INSTRUCTIONS

TASK = "retrieval.passage"
INSTRUCTION = DEFAULT_INSTRUCTIONS[TASK]
DISTINCT = 16  # distinct texts; the rest repeat them


def checkpoint(args: argparse.Namespace) -> Path:
    if args.model == "jina":
        return full_width_checkpoint(args.layers)
    from jinav3.testing import build_checkpoint

    folder = BENCH_DIR / "tiny-jina-v3"
    if not (folder / "model.safetensors").exists():
        build_checkpoint(folder)
    return folder


def model_flops(lengths: list[int], config: dict[str, Any]) -> float:
    layers, hidden, ffn = config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]
    return sum(flops_per_token(n, layers, hidden, ffn) * n for n in lengths)


def best_of(run: Callable[[], Any], repeat: int, device: str) -> float:
    run()  # warm-up: CUDA context, kernels, allocator
    best = float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def sentence_transformers_model(folder: Path, device: str, max_tokens: int) -> Any:
    from bench_throughput import native_folder
    from sentence_transformers import SentenceTransformer

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = SentenceTransformer(str(native_folder(folder)), device=device,
                                model_kwargs={"attn_implementation": "sdpa", "dtype": dtype})
    model.max_seq_length = max_tokens
    return model


def measure(args: argparse.Namespace) -> dict[str, Any]:
    folder = checkpoint(args)
    config = read_config(folder)
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    ours = Embedder.local(str(folder), device=args.device, dtype=dtype)
    tokenizer = ours.tokenizer
    cost = len(tokenizer.encode(INSTRUCTION).ids)  # the instruction with the special tokens around it
    if args.part == "plain":
        span = max(1, args.max_tokens - args.min_tokens)
        distinct = [text_of_tokens(tokenizer, max(1, args.min_tokens + (i * 37) % span - cost), i)
                    for i in range(DISTINCT)]
        texts = [distinct[i % DISTINCT] for i in range(args.texts)]
        run_ours: Callable[[], Any] = lambda: ours.embed(texts, TASK)  # noqa: E731
    else:
        distinct = [text_of_tokens(tokenizer, max(1, args.doc_tokens - cost), 100 + i)
                    for i in range(min(4, args.docs))]
        texts = [distinct[i % len(distinct)] for i in range(args.docs)]
        run_ours = lambda: ours.late_chunk_many(texts, chunker="tokens", chunk_size=256)  # noqa: E731
    lengths = [len(enc.ids) for enc in tokenizer.encode_batch([INSTRUCTION + t for t in texts])]
    flops = model_flops(lengths, config)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else gpu_peak_flops() if args.device.startswith("cuda") else None
    rows: dict[str, dict[str, Any]] = {}
    seconds = best_of(run_ours, args.repeat, args.device)
    rows["jinav3"] = {"seconds": seconds}
    ours.close()
    if not args.skip_st:
        model = sentence_transformers_model(folder, args.device, max(lengths))
        seconds = best_of(lambda: model.encode(texts, prompt=INSTRUCTION, batch_size=32, convert_to_numpy=True),
                          args.repeat, args.device)
        rows["sentence-transformers"] = {"seconds": seconds}
    for row in rows.values():
        row.update(tokens_per_s=sum(lengths) / row["seconds"], tflops_per_s=flops / row["seconds"] / 1e12,
                   mfu=flops / row["seconds"] / peak if peak else None)
    if "sentence-transformers" in rows:
        rows["jinav3"]["x_sentence_transformers"] = rows["sentence-transformers"]["seconds"] / rows["jinav3"]["seconds"]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    return {"part": args.part, "device": device, "dtype": dtype, "model": args.model, "layers": config[
        "num_hidden_layers"], "sequences": len(lengths), "tokens": sum(lengths), "longest": max(lengths),
        "peak_flops": peak, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["plain", "late"])
    parser.add_argument("--model", choices=["jina", "tiny"], default="jina")
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--texts", type=int, default=4000, help="plain: passages")
    parser.add_argument("--min-tokens", type=int, default=300, help="plain: shortest passage, instruction included")
    parser.add_argument("--max-tokens", type=int, default=512, help="plain: longest passage, instruction included")
    parser.add_argument("--docs", type=int, default=64, help="late: documents")
    parser.add_argument("--doc-tokens", type=int, default=8192, help="late: tokens a document, instruction included")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (default: from its name)")
    parser.add_argument("--skip-st", action="store_true", help="leave sentence-transformers out")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    result = measure(args)
    title = (f"{result['part']}: {result['sequences']} sequences, {result['tokens']:,} tokens (longest "
             f"{result['longest']}), {result['model']} {result['layers']} layers, {result['dtype']} on "
             f"{result['device']}")
    print_table(title, ["", "seconds", "tokens/s", "TFLOP/s", "MFU", "x sentence-transformers"],
                [[name, r["seconds"], r["tokens_per_s"], r["tflops_per_s"], r["mfu"] if r["mfu"] else "-",
                  r.get("x_sentence_transformers", "-")] for name, r in result["rows"].items()])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
