"""Bounded loopback load check of ``jinav3 serve``: N concurrent clients send a fixed number of requests.

Starts the server in this process on 127.0.0.1 (a tiny random checkpoint unless ``--model`` is given), runs
``--clients`` concurrent ``Embedder.api`` clients that share ``--requests`` requests of ``--inputs`` texts each
(mixed tasks and dimensions), checks every answer (one vector per input, nothing lost) and prints throughput
and latency percentiles. Prints a table; asserts nothing about speed.

    python benchmarks/api_load.py --clients 8 --requests 200 --inputs 16
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from jinav3 import TASKS, Embedder
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer
from jinav3.testing import CORPUS, build_checkpoint


async def _client(api: Embedder, queue: asyncio.Queue[int], inputs: int, latencies: list[float],
                  failures: list[str]) -> int:
    """Take request numbers until the queue is empty; return how many vectors came back."""
    received = 0
    while True:
        try:
            number = queue.get_nowait()
        except asyncio.QueueEmpty:
            return received
        texts = [f"{CORPUS[(number + i) % len(CORPUS)]} ({number}.{i})" for i in range(inputs)]
        task = TASKS[number % len(TASKS)]
        dimensions = (None, 16, 8)[number % 3]
        started = time.perf_counter()
        try:
            vectors = await api.aembed(texts, task, dimensions)
        except Exception as exc:  # counted and reported, never hidden
            failures.append(f"request {number}: {exc}")
            continue
        latencies.append(time.perf_counter() - started)
        if len(vectors) != inputs or not np.isfinite(vectors).all():
            failures.append(f"request {number}: {len(vectors)} vectors for {inputs} inputs")
        received += len(vectors)


async def run_load(base_url: str, width: int, clients: int, requests: int, inputs: int) -> dict[str, float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(requests):
        queue.put_nowait(number)
    latencies: list[float] = []
    failures: list[str] = []
    apis = [Embedder.api(base_url=base_url, full_dimensions=width, max_concurrency=1) for _ in range(clients)]
    started = time.perf_counter()
    counts = await asyncio.gather(*(_client(api, queue, inputs, latencies, failures) for api in apis))
    elapsed = time.perf_counter() - started
    for api in apis:
        await api.backend.aclose()  # type: ignore[attr-defined]
    for failure in failures[:5]:
        print("error:", failure)
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "clients": clients, "requests": requests, "inputs/request": inputs, "errors": len(failures),
        "lost inputs": requests * inputs - sum(counts), "seconds": elapsed, "requests/s": len(latencies) / elapsed,
        "inputs/s": sum(counts) / elapsed, "p50 ms": float(np.percentile(ms, 50)),
        "p95 ms": float(np.percentile(ms, 95)), "max ms": float(ms.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random checkpoint)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or str(build_checkpoint(Path(folder)))
        local = Embedder.local(model, device=args.device)
        app = create_app(local, ServerConfig(batch_wait_ms=args.batch_wait_ms))
        with BackgroundServer(app) as server:
            stats = asyncio.run(run_load(server.base_url, local.dimensions, args.clients, args.requests, args.inputs))
            rounds = app.state.service.batcher.rounds
    stats["batcher rounds"] = rounds
    print(f"loopback load check: {Path(model).name if args.model else 'tiny checkpoint'} on {args.device}")
    for name, value in stats.items():
        print(f"  {name:<16} {value:>12.1f}" if isinstance(value, float) else f"  {name:<16} {value:>12}")
    if stats["errors"] or stats["lost inputs"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
