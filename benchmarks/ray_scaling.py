"""Documents/s of the Ray pipeline against one process on the same cores (prints a table; no assertions).

    python benchmarks/ray_scaling.py                    # a 4-layer, 256-wide random checkpoint, 2000 documents
    python benchmarks/ray_scaling.py --model jinaai/jina-embeddings-v3 --documents 2000 --gpus-per-actor 1
    python benchmarks/ray_scaling.py --nodes 1 2       # worker nodes of a loopback cluster on this machine instead

For each actor count k, side by side on the same corpus and model:

- **one process**, torch with k threads: read the JSON Lines, late-chunk by sentences with
  ``Embedder.late_chunk_many`` in batches, write Parquet — what you would write without Ray;
- **Ray**, a fresh local instance with k + 1 logical CPUs (k one-CPU actors, one more for reading), the same work
  through ``jinav3.distributed.index_corpus``.

With ``--nodes``, the same Ray work runs on a cluster started on this machine (``jinav3.distributed.
loopback_cluster``: a head without CPUs and n worker nodes, all on 127.0.0.2), joined by address as on a real
cluster: one one-CPU actor per worker node, each node one logical CPU more for the read tasks, and for comparison
one node holding all n actors. On one box the nodes share its cores: a second node proves the protocol (objects
moving between nodes' stores, a node per actor) and fault tolerance, and shows its overhead beside one node with
the same actors; it cannot show scaling, which needs the second node's own cores.

``efficiency`` is Ray docs/s ÷ single-process docs/s. "with load" times everything a user waits for (model load;
for Ray also the input count and actor start-up, but not ``ray.init``); "steady" leaves out the model load (one
process) and everything before the first batch starts embedding (Ray: ``IndexSummary.busy_seconds``).
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


def single_process(model: str, corpus: Path, out: Path, threads: int, args: argparse.Namespace
                   ) -> tuple[float, float, int]:
    """(seconds with model load, seconds without, documents) of the plain one-process loop."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from jinav3 import Embedder

    torch.set_num_threads(threads)
    start = time.perf_counter()
    embedder = Embedder.local(model, device=args.device)
    loaded = time.perf_counter()
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    out.mkdir(parents=True)
    for part, first in enumerate(range(0, len(rows), args.batch_size)):
        batch = rows[first:first + args.batch_size]
        chunked = embedder.late_chunk_many([r["text"] for r in batch], chunker="sentences")
        flat = np.stack([c.embedding for chunks in chunked for c in chunks]).astype(np.float32)
        table = pa.table({
            "source_id": [r["id"] for r, chunks in zip(batch, chunked, strict=True) for _ in chunks],
            "chunk_index": [c.index for chunks in chunked for c in chunks],
            "start": [c.start for chunks in chunked for c in chunks],
            "end": [c.end for chunks in chunked for c in chunks],
            "text": [c.text for chunks in chunked for c in chunks],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1]),
        })
        pq.write_table(table, out / f"part-{part}.parquet")
    end = time.perf_counter()
    return end - start, end - loaded, len(rows)


def on_ray(model: str, corpus: Path, out: Path, actors: int, args: argparse.Namespace) -> tuple[float, float, int]:
    """(seconds of ``index_corpus``, its busy seconds, documents indexed)."""
    import ray

    from jinav3.distributed import IndexOptions, index_corpus

    # One logical CPU on top of the actors' own, for the read tasks: actors holding every CPU would starve them.
    ray.init(num_cpus=actors + 1, include_dashboard=False, log_to_driver=False)
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
    return seconds, summary.busy_seconds, summary.documents_indexed


def on_cluster(model: str, corpus: Path, out: Path, nodes: int, actors: int, args: argparse.Namespace
               ) -> tuple[float, float, int, int]:
    """(seconds of ``index_corpus``, its busy seconds, documents indexed, nodes the actors ran on) on a loopback
    cluster of ``nodes`` worker nodes sharing ``actors`` one-CPU actors (and one spare CPU a node)."""
    import ray

    from jinav3.distributed import IndexOptions, index_corpus
    from jinav3.distributed.loopback_cluster import start_loopback_cluster

    cluster = start_loopback_cluster(worker_nodes=nodes, cpus_per_node=actors // nodes + 1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        options = IndexOptions(model=model, device=args.device, actors=actors, cpus_per_actor=1.0,
                               batch_size=args.batch_size)
        start = time.perf_counter()
        summary = index_corpus(corpus, out, options)
        seconds = time.perf_counter() - start
        actors_seen = cluster.global_state.actor_table(None).values()  # the GCS keeps finished actors too
        used = len({a["Address"]["NodeID"] for a in actors_seen if "MapWorker" in a["ActorClassName"]})
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert summary.balanced, summary
    return seconds, summary.busy_seconds, summary.documents_indexed, used


def cluster_table(model: str, corpus: Path, root: Path, args: argparse.Namespace) -> None:
    """Docs/s with 1..n worker nodes (one actor each) against one node holding the same actors."""
    print(f"{'nodes':>5} {'actors':>6} {'on nodes':>8} {'docs/s':>7} {'steady':>7}")
    layouts = [(n, n) for n in args.nodes] + [(1, n) for n in args.nodes if n > 1]
    for nodes, actors in layouts:
        seconds, busy, docs, used = on_cluster(model, corpus, root / f"cluster-{nodes}-{actors}", nodes, actors,
                                               args)
        print(f"{nodes:>5} {actors:>6} {used:>8} {docs / seconds:>7.1f} {docs / busy:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder or hub id (default: a random 4-layer 256-wide one)")
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gpus-per-actor", type=float, default=0.0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nodes", type=int, nargs="+",
                        help="worker nodes of a loopback cluster on this machine (one actor each) instead of actors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model
        if model is None:
            from jinav3.testing import build_checkpoint

            model = str(build_checkpoint(root / "model", hidden=256, layers=4, heads=4, intermediate=1024))
        corpus = root / "docs.jsonl"
        write_corpus(corpus, args.documents)
        if args.nodes:
            print(f"model: {args.model or 'random 4-layer 256-wide checkpoint'}; {args.documents} documents, late "
                  f"chunking by sentences, batches of {args.batch_size}; a loopback Ray cluster (head without CPUs) "
                  "joined by address, one-CPU actors")
            cluster_table(model, corpus, root, args)
            return
        print(f"model: {args.model or 'random 4-layer 256-wide checkpoint'}; {args.documents} documents, late "
              f"chunking by sentences, batches of {args.batch_size}; k actors (1 CPU each) vs one process with "
              "k torch threads")
        print(f"{'k':>2} {'1-proc docs/s':>13} {'steady':>7} {'Ray docs/s':>10} {'steady':>7} "
              f"{'efficiency':>10} {'steady':>7}")
        for k in args.actors:
            total, work, docs = single_process(model, corpus, root / f"single-{k}", k, args)
            seconds, busy, indexed = on_ray(model, corpus, root / f"ray-{k}", k, args)
            assert indexed == docs
            single, single_steady = docs / total, docs / work
            ray_rate, ray_steady = docs / seconds, docs / busy
            print(f"{k:>2} {single:>13.1f} {single_steady:>7.1f} {ray_rate:>10.1f} {ray_steady:>7.1f} "
                  f"{ray_rate / single:>10.2f} {ray_steady / single_steady:>7.2f}")


if __name__ == "__main__":
    main()
