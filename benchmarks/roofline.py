"""Roofline: this machine's GEMM peak per precision, and how much of it each engine's forward pass achieves (MFU).

    python benchmarks/roofline.py                               # MiniLM and jina-v3 at its real depth (24 layers)
    python benchmarks/roofline.py --models minilm --engines torch-fp32,openvino-int8 --late-tokens 2048
    python benchmarks/roofline.py --models path/to/checkpoint --gemm 256,256,256 --plain-texts 2   # any folder

**GEMM peaks.** The best of ``--repeat`` runs of one transformer-shaped matrix product (``--gemm M,K,N``: M tokens,
K in, N out; default 2048 x 1024 x 4096, jina-v3's FFN) in each kernel the engines use: torch fp32 and bf16
(``torch.matmul``; bf16 only on CPUs with native bf16, AVX512-BF16 or AMX-BF16: elsewhere it is emulated), torch
int8 (``torch._int_mm``: int8 x int8 -> int32, VNNI/AMX-INT8 where present), and OpenVINO f32, bf16 and int8 (int8
weights with activations quantised per group of 128 on the fly: the ``engine="openvino", dtype="int8"`` kernel).
A precision's peak is its fastest kernel. On CPUs with AMX, oneDNN (torch, OpenVINO) uses it by itself for bf16
and int8; the table's feature column says which instructions were there.

**Model FLOPs.** A sequence of n tokens through L layers of width h with FFN width f costs

    L x (2 x (4h^2 + 2hf) x n  +  4 x n^2 x h)

2 FLOPs per multiply-add over the dense weights (Q, K, V, output: 4h^2; FFN: 2hf) for every token, plus attention's
two n x n products (QK^T and AV: 2n^2h each). Embeddings, LayerNorm, softmax, the rank-4 LoRA adapters and pooling
are left out (a few per cent), so MFU slightly under-counts. n is what the model reads: special tokens and the task
instruction included; late chunking counts each macro window the engine runs (one window up to the model's
context, several with overlap beyond it).

**MFU** is model FLOP/s over the engine's precision's GEMM peak: the fastest kernel of that precision, measured again
before and after each timing, at the best rate it reached so far in the run (on a shared machine the load drifts:
MFU then errs low, never high; the table shows the peak each MFU used). int8 engines run attention,
softmax and the activation quantisation in bf16 or fp32, so against the int8 peak they read low, most at long
windows where attention dominates. Each engine runs ``--plain-texts`` texts of ``--plain-tokens`` tokens
(``Embedder.embed``) and one document of ``--late-tokens`` tokens cut into 256-token chunks
(``Embedder.late_chunk``, warmed up on its first eighth), after a warm-up, best of ``--repeat`` (late chunking:
half as many).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import BENCH_DIR, exported_once, flops_per_token, machine, print_table, text_of_tokens, write_json
from bench_engines import VARIANTS, missing_engine, model_folders

from jinav3 import Embedder
from jinav3.runtime.hardware import cpu_features

TASK = "retrieval.passage"
PRECISION = {"fp32": "fp32", "bf16": "bf16", "int8": "int8"}  # the engine-name suffix -> whose peak it is held to


@dataclass
class Gemm:
    """One kernel's measured rate."""

    kernel: str
    precision: str
    needs: str
    flops: float | None  # FLOP/s (int8: OP/s), None when skipped
    note: str = ""
    run: Callable[[], Any] | None = field(default=None, repr=False)  # one product, to measure it again

    def again(self, repeat: int, ops: float) -> float:
        """Measure this kernel again and return its best rate so far: on a shared machine the load drifts, so the
        peak is the most the kernel reached at any point of the run (MFU errs low, never above what it could be)."""
        assert self.run is not None and self.flops is not None
        self.flops = max(self.flops, ops / best_seconds(self.run, repeat))
        return self.flops

    def figures(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "precision": self.precision, "needs": self.needs, "flops": self.flops,
                "note": self.note}


def best_seconds(run: Callable[[], Any], repeat: int, warm_up: Callable[[], Any] | None = None) -> float:
    (warm_up or run)()  # kernel selection, weight packing, allocations
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def torch_gemms(m: int, k: int, n: int, repeat: int) -> list[Gemm]:
    cpu = cpu_features()
    ops = 2 * m * k * n
    a, b = torch.randn(m, k), torch.randn(k, n)
    rows = [Gemm("torch matmul fp32", "fp32", "AVX2/AVX-512 FMA", ops / best_seconds(lambda: a @ b, repeat),
                 run=lambda: a @ b)]
    if cpu.native_bf16:
        a16, b16 = a.bfloat16(), b.bfloat16()
        rows.append(Gemm("torch matmul bf16", "bf16", "AVX512-BF16 or AMX-BF16",
                         ops / best_seconds(lambda: a16 @ b16, repeat), run=lambda: a16 @ b16))
    else:
        rows.append(Gemm("torch matmul bf16", "bf16", "AVX512-BF16 or AMX-BF16", None, "no native bf16: emulated"))
    a8 = torch.randint(-128, 128, (m, k), dtype=torch.int8)
    b8 = torch.randint(-128, 128, (k, n), dtype=torch.int8)
    try:
        rows.append(Gemm("torch _int_mm int8", "int8", "AVX512-VNNI, AVX-VNNI or AMX-INT8",
                         ops / best_seconds(lambda: torch._int_mm(a8, b8), repeat), run=lambda: torch._int_mm(a8, b8)))
    except RuntimeError as exc:
        rows.append(Gemm("torch _int_mm int8", "int8", "AVX512-VNNI, AVX-VNNI or AMX-INT8", None, str(exc)[:60]))
    return rows


def openvino_gemms(m: int, k: int, n: int, repeat: int) -> list[Gemm]:
    """OpenVINO's MatMul as the engines compile it: float weights under an f32/bf16 hint, and int8 weights (scaled
    per output row) with dynamic per-group activation quantisation."""
    import openvino as ov
    import openvino.opset13 as opset

    from jinav3.backends.openvino_engine import OpenVinoBackend

    rng = np.random.default_rng(0)
    x = opset.parameter([m, k], np.float32)
    float_weights = opset.constant(rng.standard_normal((n, k), dtype=np.float32))
    int8_weights = opset.multiply(opset.convert(opset.constant(rng.integers(-127, 128, (n, k), dtype=np.int8)),
                                                np.float32), opset.constant(np.full((n, 1), 0.01, np.float32)))
    feed = {0: rng.standard_normal((m, k), dtype=np.float32)}
    core, ops, cpu = ov.Core(), 2 * m * k * n, cpu_features()
    rows = []
    plans = [("OpenVINO MatMul f32", "fp32", "AVX2/AVX-512 FMA", float_weights, {"INFERENCE_PRECISION_HINT": "f32"})]
    if cpu.native_bf16:
        plans.append(("OpenVINO MatMul bf16", "bf16", "AVX512-BF16 or AMX-BF16", float_weights,
                      {"INFERENCE_PRECISION_HINT": "bf16"}))
    plans.append((f"OpenVINO int8 weights, dynamic int8 activations (group {OpenVinoBackend.activation_group})",
                  "int8", "AVX512-VNNI, AVX-VNNI or AMX-INT8", int8_weights,
                  {"INFERENCE_PRECISION_HINT": "bf16" if cpu.native_bf16 else "f32",
                   "DYNAMIC_QUANTIZATION_GROUP_SIZE": OpenVinoBackend.activation_group}))
    for kernel, precision, needs, weights, config in plans:
        model = ov.Model([opset.matmul(x, weights, False, True)], [x])
        request = core.compile_model(model, "CPU", {**config, "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()
        run = functools.partial(request.infer, feed)
        rows.append(Gemm(kernel, precision, needs, ops / best_seconds(run, repeat), run=run))
    return rows


def gemm_peaks(shape: tuple[int, int, int], repeat: int) -> tuple[list[Gemm], dict[str, Gemm]]:
    """Every kernel's rate, and per precision the fastest kernel (its peak)."""
    rows = torch_gemms(*shape, repeat)
    try:
        rows += openvino_gemms(*shape, repeat)
    except ImportError as exc:
        rows.append(Gemm("OpenVINO", "-", "-", None, f"not installed ({exc})"))
    fastest: dict[str, Gemm] = {}
    for row in rows:
        if row.flops is not None and row.flops > getattr(fastest.get(row.precision), "flops", 0.0):
            fastest[row.precision] = row
    return rows, fastest


def model_flops(lengths: list[int], layers: int, hidden: int, ffn: int) -> float:
    """The formula of the module docstring, summed over the sequences the engine ran."""
    return sum(flops_per_token(n, layers, hidden, ffn) * n for n in lengths)


def folders(which: str, layers: int, needs_graph: bool) -> tuple[Path, Path | None]:
    """(torch checkpoint, its ONNX export or None): ``jina`` / ``minilm`` as the engine benchmarks build them, or
    any checkpoint folder (exported once under the bench folder)."""
    if which in ("jina", "minilm"):
        if not needs_graph:
            from _common import engine_checkpoint

            return engine_checkpoint(which, layers), None
        return model_folders(which, layers)
    source = Path(which)
    if not needs_graph:
        return source, None
    return source, exported_once(source, BENCH_DIR / f"roofline-{source.name}-onnx")


def engine_rows(which: str, engines: list[str], args: argparse.Namespace, peaks: dict[str, Gemm]) -> list[list]:
    from jinav3.model.files import read_config

    wanted = [e for e in engines if missing_engine(e) is None]
    graph = any(VARIANTS[e].get("engine", "torch") != "torch" for e in wanted)
    source, exported = folders(which, args.layers, graph)
    config = read_config(source)
    layers, hidden, ffn = config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]
    rows = []
    for name in engines:
        reason = missing_engine(name)
        if reason:
            rows.append([which, name, "skipped: " + reason, *["-"] * 7])
            continue
        options = VARIANTS[name]
        folder = exported if options.get("engine", "torch") != "torch" else source
        print(f"{which}: {name} ...", file=sys.stderr, flush=True)
        embedder = Embedder.local(str(folder), **options)
        backend = embedder.backend
        probe = backend.tokenize_document("x", TASK)
        instruction_cost = len(probe.head) + len(probe.tail)  # special tokens and the task instruction
        plain_tokens = min(args.plain_tokens, backend.max_length)  # MiniLM reads at most 256
        plain = [text_of_tokens(embedder.tokenizer, plain_tokens - instruction_cost, seed)
                 for seed in range(args.plain_texts)]
        plain_lengths = [backend.tokenize_document(t, TASK).length for t in plain]
        precision = PRECISION[name.split("-")[1]]
        kernel = peaks.get(precision)
        peak = kernel.again(args.repeat, args.gemm_ops) if kernel else None
        seconds = best_seconds(lambda e=embedder, t=plain: e.embed(t, TASK), args.repeat)
        peak = kernel.again(args.repeat, args.gemm_ops) if kernel else None  # before and after the timing
        flops = model_flops(plain_lengths, layers, hidden, ffn)
        rows.append([which, name, f"plain {max(plain_lengths)} tok x {len(plain)}", sum(plain_lengths) / seconds,
                     flops / seconds / 1e9, precision, peak / 1e9 if peak else "-",
                     flops / seconds / peak if peak else "-", len(plain), seconds])
        document = text_of_tokens(embedder.tokenizer, args.late_tokens - instruction_cost, 1000)
        tokenized = backend.tokenize_document(document, TASK)
        windows = backend._window_plan(tokenized, backend.max_length, None)  # the windows late_chunk will run
        late_lengths = [w.end - w.start + instruction_cost for w in windows]
        peak = kernel.again(args.repeat, args.gemm_ops) if kernel else None
        prefix = document[: len(document) // 8]  # a shorter warm-up: at the real depth one pass takes minutes
        seconds = best_seconds(lambda e=embedder, d=document: e.late_chunk(d, chunker="tokens", chunk_size=256),
                               max(1, args.repeat // 2), lambda e=embedder, p=prefix: e.late_chunk(p, chunker="tokens"))
        peak = kernel.again(args.repeat, args.gemm_ops) if kernel else None
        flops = model_flops(late_lengths, layers, hidden, ffn)
        rows.append([which, name, f"late {tokenized.length} tok", tokenized.length / seconds, flops / seconds / 1e9,
                     precision, peak / 1e9 if peak else "-", flops / seconds / peak if peak else "-", len(windows),
                     seconds])
        embedder.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,jina",
                        help="comma-separated: minilm (the real all-MiniLM-L6-v2), jina (full width, --layers deep, "
                        "random weights), or checkpoint folders")
    parser.add_argument("--layers", type=int, default=24, help="depth of the jina model (24 = the real depth)")
    parser.add_argument("--engines", default="torch-fp32,torch-bf16,openvino-bf16,openvino-int8",
                        help="comma-separated, from " + ", ".join(v for v in VARIANTS if "padded" not in v))
    parser.add_argument("--gemm", default="2048,1024,4096", help="M,K,N of the peak GEMM")
    parser.add_argument("--plain-texts", type=int, default=4)
    parser.add_argument("--plain-tokens", type=int, default=512,
                        help="tokens per plain text, as the model reads it (at most the model's max_length)")
    parser.add_argument("--late-tokens", type=int, default=8192, help="tokens of the late-chunked document")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    unknown = sorted(set(engines) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {', '.join(VARIANTS)}")
    shape = tuple(int(v) for v in args.gemm.split(","))
    if len(shape) != 3:
        parser.error("--gemm takes M,K,N")
    args.gemm_ops = 2 * shape[0] * shape[1] * shape[2]

    where = machine()
    print(f"{where['cpu']}; torch {where['torch']}, {where['threads']} threads")
    gemms, peaks = gemm_peaks(shape, args.repeat)  # type: ignore[arg-type]
    print_table(f"GEMM peaks, {shape[0]} x {shape[1]} x {shape[2]} (best of {args.repeat})",
                ["kernel", "precision", "needs", "GFLOP/s", "note"],
                [[g.kernel, g.precision, g.needs, g.flops / 1e9 if g.flops else "-", g.note] for g in gemms])
    rows = []
    for which in [m for m in args.models.split(",") if m]:
        rows += engine_rows(which, engines, args, peaks)
    print_table("Engines: model FLOP/s against their precision's GEMM peak (MFU)",
                ["model", "engine", "work", "tok/s", "GFLOP/s", "peak of", "peak GFLOP/s", "MFU", "sequences",
                 "seconds"], rows)
    write_json(args.json, {"gemm": [g.figures() for g in gemms], "args": vars(args), "engines": rows})


if __name__ == "__main__":
    main()
