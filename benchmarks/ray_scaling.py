"""Documents/s of the Ray pipeline with 1 vs 2 embedding actors on this machine (prints a table; no assertions).

    python benchmarks/ray_scaling.py                    # a 4-layer, 256-wide random checkpoint, 400 documents
    python benchmarks/ray_scaling.py --model jinaai/jina-embeddings-v3 --documents 2000 --gpus-per-actor 1

Each run starts a fresh local Ray instance with ``--cpus`` + 1 logical CPUs; every actor asks for one CPU (so k
actors use k torch threads) and the extra one runs reading, chunking and writing. The time covers reading,
chunking, embedding and writing Parquet, including actor start-up (model load), which is what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

WORDS = ("river stone light city wall market winter bridge harbour letter garden engine tower music train "
         "paper forest window station summer").split()


def write_corpus(path: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            sentences = [" ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize() + "."
                         for _ in range(rng.randint(4, 12))]
            out.write(json.dumps({"id": f"doc-{i}", "text": " ".join(sentences)}) + "\n")


def run(model: str, corpus: Path, out: Path, actors: int, args: argparse.Namespace) -> tuple[float, int, int]:
    import ray

    from jinav3.distributed import IndexOptions, index_corpus

    # One logical CPU on top of the actors' own, for the read/prepare/write tasks: actors holding every CPU would
    # starve those tasks and the pipeline would stall.
    ray.init(num_cpus=args.cpus + 1, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        options = IndexOptions(model=model, device=args.device, actors=actors, gpus_per_actor=args.gpus_per_actor,
                               cpus_per_actor=1.0, batch_size=args.batch_size)
        start = time.perf_counter()
        summary = index_corpus(corpus, out, options)
        seconds = time.perf_counter() - start
    finally:
        ray.shutdown()
    assert summary.balanced, summary
    return seconds, summary.documents_indexed, summary.chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder or hub id (default: a random 4-layer 256-wide one)")
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus", type=int, default=2,
                        help="CPU cores the actors may use (Ray gets one more logical CPU for I/O tasks)")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model
        if model is None:
            from jinav3.testing import build_checkpoint

            model = str(build_checkpoint(root / "model", hidden=256, layers=4, heads=4, intermediate=1024))
        corpus = root / "docs.jsonl"
        write_corpus(corpus, args.documents)
        print(f"model: {args.model or 'random 4-layer 256-wide checkpoint'}; {args.documents} documents, "
              f"late chunking by sentences; Ray with {args.cpus} CPUs for actors + 1 for I/O tasks")
        print(f"{'actors':>6} {'seconds':>8} {'docs/s':>8} {'chunks/s':>9} {'speed-up':>8}")
        base = None
        for actors in args.actors:
            seconds, docs, chunks = run(model, corpus, root / f"out-{actors}", actors, args)
            base = base or docs / seconds
            print(f"{actors:>6} {seconds:>8.1f} {docs / seconds:>8.1f} {chunks / seconds:>9.1f} "
                  f"{docs / seconds / base:>7.2f}x")


if __name__ == "__main__":
    main()
