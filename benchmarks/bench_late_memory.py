"""Late chunking of one huge document: peak resident memory and time by document size, this code against another.

Every (code, model, size) runs in a fresh subprocess, so each peak is that call's own: the table shows the resident
memory before ``Embedder.late_chunk`` (model and text loaded), the sampled peak during it, their difference, the
wall time, the process's CPU time (steadier than wall time on a shared machine) and both per MB of text. Several
``--window`` sizes run interleaved, so their ratio is measured under the same load. Models: the 2-layer, 32-wide
test checkpoint (``tiny``) and the real 1,024-wide architecture with random weights and ``--layers`` layers
(``full``). Texts: the test corpus repeated to the size, cut into sentences.

    git archive main shared_core/src | tar -x -C /tmp/jinav3-main       # the code to compare against
    nice -n 10 python benchmarks/bench_late_memory.py --before /tmp/jinav3-main/shared_core/src \
        --json benchmarks/results/late_memory.json

``--before`` is optional (without it only this checkout's code is measured); sizes and models are options too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_DIR, RssSampler, full_width_checkpoint, print_table, write_json

HERE_SRC = Path(__file__).resolve().parent.parent / "shared_core" / "src"


def document(megabytes: float) -> str:
    from jinav3.testing import CORPUS

    base = " ".join(CORPUS) + "\n\n"
    size = int(megabytes * 2**20)
    return (base * (size // len(base) + 1))[:size]


def model_folder(model: str, layers: int) -> Path:
    if model == "full":
        return full_width_checkpoint(layers)
    from jinav3.testing import build_checkpoint

    folder = BENCH_DIR / "tiny-jina-v3"
    if not (folder / "model.safetensors").exists():
        build_checkpoint(folder)
    return folder


def measure_one(model: str, megabytes: float, layers: int, window: int) -> dict:
    """Runs in the child: load, build the text, late-chunk it once under the RSS sampler."""
    from jinav3 import Embedder

    embedder = Embedder.local(str(model_folder(model, layers)), device="cpu")
    text = document(megabytes)
    with RssSampler() as rss:
        start, cpu_start = time.perf_counter(), time.process_time()
        chunks = embedder.late_chunk(text, window=window, show_progress=False)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"before_mb": rss.before_mb, "peak_mb": rss.peak_mb, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "chunks": len(chunks)}


def run_child(src: Path, model: str, megabytes: float, window: int, args: argparse.Namespace) -> dict:
    """One measurement in a fresh process running the code under ``src``, its address space capped (a shared
    machine must not be driven out of memory; a run that hits the cap is reported as such)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, __file__, "--child", model, str(megabytes), "--layers", str(args.layers),
               "--window", str(window)]
    cap = int(args.cap_gb * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, preexec_fn=limit)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["killed"])[-1]
        return {"error": f"over the {args.cap_gb:g} GB cap" if "MemoryError" in last or "alloc" in last else last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="the src folder of the code to compare against")
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 5, 20], help="document sizes in MB")
    parser.add_argument("--models", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--layers", type=int, default=1, help="layers of the full-width checkpoint")
    parser.add_argument("--window", type=int, nargs="+", default=[1024], help="macro windows in tokens (8192 is the "
                        "default of late_chunk; smaller windows keep the CPU time of a 20 MB run reasonable)")
    parser.add_argument("--cap-gb", type=float, default=8.0, help="address-space cap of each measured process")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "MB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.child[0], float(args.child[1]), args.layers, args.window[0])))
        return
    codes = [("after", HERE_SRC)] + ([("before", args.before)] if args.before else [])
    rows, results = [], []
    runs = [(model, megabytes, window, name, src) for model in args.models for megabytes in args.sizes
            for window in args.window for name, src in codes]  # interleaved: all see the same load
    for model, megabytes, window, name, src in runs:
        got = {"code": name, "model": model, "mb": megabytes, "window": window,
               **run_child(src, model, megabytes, window, args)}
        results.append(got)
        if "error" in got:
            rows.append([model, megabytes, window, name, "-", "-", "-", "-", "-", "-", "-", "-", got["error"][:60]])
            continue
        rise = got["peak_mb"] - got["before_mb"]
        rows.append([model, megabytes, window, name, got["before_mb"], got["peak_mb"], rise, got["seconds"],
                     got["cpu_seconds"], got["seconds"] / megabytes, got["cpu_seconds"] / megabytes, got["chunks"], ""])
        print(f"{model} {megabytes} MB window {window} {name}: {got}", file=sys.stderr, flush=True)
    header = ["model", "MB", "window", "code", "RSS before", "peak RSS", "rise (MB)", "seconds", "CPU s", "s/MB",
              "CPU s/MB", "chunks", "error"]
    print_table("late_chunk of one document: resident memory (MB) and time", header, rows)
    write_json(args.json, {"layers": args.layers, "windows": args.window, "cap_gb": args.cap_gb, "results": results})


if __name__ == "__main__":
    main()
