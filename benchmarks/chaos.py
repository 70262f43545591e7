"""Bounded chaos run of ``jinav3 serve`` on loopback: normal clients beside hostile, disconnecting and slow ones.

Starts the real ``jinav3 serve`` command on 127.0.0.1 (a tiny random checkpoint unless ``--model``), then:

1. *alone*: every normal request once, one at a time: the reference answers;
2. *quiet*: ``--clients`` concurrent clients send the normal requests (``--rounds`` passes): latency baseline;
3. *hostile*: the same normal clients again, started ``--hostile-lead`` seconds after ``--hostile`` clients that
   each send, one every ``--hostile-interval`` seconds and every kind in turn, non-finite numbers, wrong types,
   broken JSON, 10 MB texts, requests they abandon mid-body or while queued, partial heads or bodies trickled
   slowly, blank late-chunking documents (``blank-late``), 1 MB bodies of 500,000 zeros (``amplify``: one problem
   per item) and heavy valid bodies (``heavy``: 2,048 texts, refused by admission by work when the queue is full);
   ``--flood N`` adds N sockets trickling request heads for the whole phase (``--max-connections`` slots).

Prints requests sent and answered by status, inputs in vs vectors out (lost), answers that differ from the same
request made alone (mismatched), normal requests that failed beside the hostile ones (neighbour failures), 5xx
answers, how fast refusals (503) and error answers came, normal-request latency percentiles quiet vs hostile and
their p95 ratio, the server's RSS before and after, and tracebacks in its log. Loopback only; bounded in count
(and by ``--max-seconds``); asserts nothing.

    python benchmarks/chaos.py --clients 8 --hostile 8
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import multiprocessing
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _serve import rss_mb, served

from jinav3 import TASKS
from jinav3.testing import CORPUS, build_checkpoint, same_vectors

MODEL = "jina-embeddings-v3"


def normal_requests(count: int) -> list[dict]:
    """Distinct well-formed requests: mixed tasks, dimensions, sizes, and some late-chunking ones."""
    out = []
    for n in range(count):
        texts = [f"{CORPUS[(n + i) % len(CORPUS)]} ({n}.{i})" for i in range(1 + n % 6)]
        body = {"model": MODEL, "input": texts, "task": TASKS[n % len(TASKS)], "embedding_type": "base64"}
        if n % 3 == 1:
            body["dimensions"] = 16
        if n % 5 == 4:
            body["late_chunking"] = True
        out.append(body)
    return out


def vectors_of(response: httpx.Response) -> np.ndarray:
    data = sorted(response.json()["data"], key=lambda d: d["index"])
    return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data])


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.statuses: collections.Counter[str] = collections.Counter()
        self.inputs = self.vectors = self.mismatches = 0
        self.started: list[tuple[float, str]] = []  # hostile: (wall-clock time, kind) of each request
        self.answered_in: dict[str, list[float]] = collections.defaultdict(list)  # hostile: seconds, by status

    def answer(self, label: str) -> None:
        self.statuses[label] += 1


async def normal_client(client: httpx.AsyncClient, url: str, bodies: list[dict], order: list[int],
                        reference: list[np.ndarray], tally: Tally, latencies: list[float]) -> None:
    for index in order:
        body = bodies[index]
        tally.sent += 1
        tally.inputs += len(body["input"])
        started = time.perf_counter()
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            tally.answer(f"no answer ({type(exc).__name__})")
            continue
        tally.answer(str(response.status_code))
        if response.status_code != 200:
            continue
        latencies.append(time.perf_counter() - started)
        got = vectors_of(response)
        tally.vectors += len(got)
        if not same_vectors(got, reference[index]):  # bit for bit: the promise, not a tolerance
            tally.mismatches += 1


def hostile_bodies() -> list[tuple[str, bytes]]:
    huge = json.dumps({"model": MODEL, "input": ["word " * 2_000_000]}).encode()  # 10 MB
    return [
        ("non-finite", b'{"model": "%s", "input": "a", "dimensions": 1e400}' % MODEL.encode()),
        ("non-finite", b'{"model": "%s", "input": ["a", NaN]}' % MODEL.encode()),
        ("non-finite", b'{"model": "%s", "input": "a", "encoding_format": "float", "dimensions": -Infinity}'
         % MODEL.encode()),
        ("wrong-type", b'{"model": "%s", "input": {"text": 5}, "normalized": "yes"}' % MODEL.encode()),
        ("wrong-type", b'{"model": 7, "input": [[["a"]]], "task": []}'),
        ("malformed", b'{"model": "' + MODEL.encode() + b'", "input": ["a"'),
        ("malformed", b"\xff\xfe not json at all"),
        ("huge", huge),
        ("blank-late", json.dumps({"model": MODEL, "input": [" "], "late_chunking": True}).encode()),
        ("amplify", b'{"model": "%s", "input": [' % MODEL.encode() + b",".join([b"0"] * 500_000) + b"]}"),
        ("heavy", json.dumps({"model": MODEL, "input": [f"{CORPUS[i % len(CORPUS)]} " * 12 for i in
                                                         range(2048)]}).encode()),
    ]


HOSTILE_BODIES = hostile_bodies()


async def raw_exchange(port: int, payload: bytes, *, close_after: float | None = None,
                       trickle: float | None = None) -> bytes:
    """Send ``payload`` on a fresh socket (optionally a byte at a time, or closing early); the answer's bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if trickle is not None:
            for byte in payload:
                if writer.is_closing() or reader.at_eof():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(trickle)
        else:
            writer.write(payload)
            await writer.drain()
        if close_after is not None:
            await asyncio.sleep(close_after)
            return b""
        return await asyncio.wait_for(reader.read(), 60)
    except (ConnectionError, asyncio.TimeoutError):
        try:  # the server may have answered (408) before closing
            return await asyncio.wait_for(reader.read(), 1)
        except (ConnectionError, asyncio.TimeoutError):
            return b""
    finally:
        writer.close()


def http_post(body: bytes, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    return (b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % length) + body


HOSTILE_KINDS = ("non-finite", "wrong-type", "malformed", "huge", "abandon", "mid-body", "slow-head", "slow-body",
                 "blank-late", "amplify", "heavy")


async def hostile_client(client: httpx.AsyncClient, url: str, port: int, stop: asyncio.Event, seed: int,
                         tally: Tally, kinds: collections.Counter[str], allowed: tuple[str, ...],
                         interval: float) -> None:
    """Start one hostile request every ``interval`` seconds (or when the last one ends, if later), every allowed
    kind in turn from the ``seed``-th, so each kind keeps arriving at a steady rate. Slow heads and bodies run
    beside the others (they last until the server's timeouts) instead of holding the turn."""
    rng = random.Random(seed)
    heavy = json.dumps({"model": MODEL, "input": ["Berlin is the capital of Germany. " * 150] * 8}).encode()
    slow: set[asyncio.Task] = set()
    bodies_of = {kind: [body for label, body in HOSTILE_BODIES if label == kind] for kind in allowed}
    turn = seed
    while not stop.is_set():
        kind = allowed[turn % len(allowed)]
        turn += 1
        tally.sent += 1
        kinds[kind] += 1
        tally.started.append((time.time(), kind))
        began = time.perf_counter()
        bodies = bodies_of[kind]
        if bodies:
            try:
                response = await client.post(url, content=rng.choice(bodies),
                                             headers={"Content-Type": "application/json"})
                tally.answer(str(response.status_code))
                tally.answered_in[str(response.status_code)].append(time.perf_counter() - began)
            except httpx.HTTPError as exc:
                tally.answer(f"no answer ({type(exc).__name__})")
        elif kind == "abandon":  # a heavy request dropped while queued or computing
            await raw_exchange(port, http_post(heavy), close_after=0.05)
            tally.answer("abandoned by the client")
        elif kind == "mid-body":
            await raw_exchange(port, http_post(heavy[:1000], declared=len(heavy)), close_after=0.05)
            tally.answer("abandoned by the client")
        else:
            task = asyncio.create_task(slow_exchange(port, kind, tally))
            slow.add(task)
            task.add_done_callback(slow.discard)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - began)))
    await asyncio.gather(*slow)


async def slow_exchange(port: int, kind: str, tally: Tally) -> None:
    """A head (``slow-head``) or a body (``slow-body``) trickled a byte every 0.25 s until the server gives up."""
    payload = (b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n" if kind == "slow-head"
               else http_post(b'{"model": "' + MODEL.encode() + b'", "input": ["slow"]}'))
    raw = await raw_exchange(port, payload, trickle=0.25)
    tally.answer(raw.split(b" ", 2)[1].decode() if raw.startswith(b"HTTP/1.1 ") else "408 or closed by the server")


async def flood(port: int, count: int, stop: asyncio.Event) -> int:
    """Hold ``count`` sockets trickling a request head (a byte every 0.5 s), reconnecting each one the server
    closes, until ``stop``; returns how many connections were opened in all."""
    opened = 0

    async def one() -> None:
        nonlocal opened
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                opened += 1
                try:
                    for byte in b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"x" * 10_000:
                        if stop.is_set() or reader.at_eof():
                            break
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.5)
                finally:
                    writer.close()
            except OSError:
                await asyncio.sleep(0.1)

    await asyncio.gather(*(one() for _ in range(count)))
    return opened


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3  # type: ignore[return-value]
    ms = np.array(values) * 1000
    return tuple(float(np.percentile(ms, q)) for q in (50, 95, 99))  # type: ignore[return-value]


async def run(args: argparse.Namespace, port: int, pid: int) -> dict:
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    bodies = normal_requests(args.requests)
    timeout = httpx.Timeout(120.0)
    limits = httpx.Limits(max_connections=args.clients + args.hostile + 4)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        reference = []
        for body in bodies:  # alone, one at a time
            response = await client.post(url, json=body)
            response.raise_for_status()
            reference.append(vectors_of(response))
        rss_before = rss_mb(pid)
        orders = [[(c + k) % len(bodies) for k in range(args.rounds * len(bodies) // args.clients)]
                  for c in range(args.clients)]

        quiet, quiet_lat = Tally(), []
        await asyncio.gather(*(normal_client(client, url, bodies, order, reference, quiet, quiet_lat)
                               for order in orders))

        mixed, mixed_lat = Tally(), []
        stop, running, results = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Queue()
        # hostile clients run in their own process, so their 10 MB uploads do not stall this process's clocks
        hostiles = multiprocessing.Process(target=_hostile_process, args=(url, port, args.hostile, tuple(args.kinds),
                                                                          args.hostile_interval, args.hostile_lead,
                                                                          args.flood, stop, running, results))
        hostiles.start()
        window: list[float] = []  # wall-clock start and end of the measured phase
        try:
            # measure beside a steady hostile mix, not beside its first burst (every hostile client at once)
            if not await asyncio.to_thread(running.wait, 120):
                raise SystemExit("the hostile clients did not start")
            window.append(time.time())
            await asyncio.wait_for(asyncio.gather(*(normal_client(client, url, bodies, order, reference, mixed,
                                                                  mixed_lat) for order in orders)),
                                   args.max_seconds)
        finally:
            window.append(time.time())
            stop.set()
            hostile, kinds = results.get(timeout=120)
            hostiles.join(60)
        await asyncio.sleep(1.0)
        during = collections.Counter(kind for at, kind in hostile.started if window[0] <= at <= window[1])
        return {"quiet": (quiet, quiet_lat), "mixed": (mixed, mixed_lat), "hostile": hostile, "kinds": kinds,
                "during": during, "seconds": window[1] - window[0], "rss": (rss_before, rss_mb(pid))}


def _hostile_process(url: str, port: int, count: int, allowed: tuple[str, ...], interval: float, lead: float,
                     flood_count: int, stop: Any, running: Any, results: Any) -> None:
    """Run ``count`` hostile clients until ``stop`` is set, setting ``running`` once they have run ``lead``
    seconds; put ``(tally, kinds)`` on ``results``."""

    async def main() -> tuple[Tally, collections.Counter[str]]:
        tally, kinds, done = Tally(), collections.Counter(), asyncio.Event()
        limits = httpx.Limits(max_connections=count + 2)
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0), limits=limits) as client:
            clients = [asyncio.create_task(hostile_client(client, url, port, done, seed, tally, kinds, allowed,
                                                          interval)) for seed in range(count)]
            flooding = asyncio.create_task(flood(port, flood_count, done))
            await asyncio.sleep(lead)
            running.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)
            done.set()
            await asyncio.gather(*clients, return_exceptions=True)
            kinds["flood connections"] = await flooding
        return tally, kinds

    results.put(asyncio.run(main()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random checkpoint)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent normal clients")
    parser.add_argument("--hostile", type=int, default=8, help="concurrent hostile clients")
    parser.add_argument("--requests", type=int, default=40, help="distinct normal requests")
    parser.add_argument("--rounds", type=int, default=10, help="passes over the normal requests per phase")
    parser.add_argument("--hostile-interval", type=float, default=0.25, help="seconds between the starts of one "
                        "hostile client's requests (8 clients at 0.25 s: 32 hostile requests a second)")
    parser.add_argument("--hostile-lead", type=float, default=1.0, help="seconds the hostile clients run before the "
                        "normal clients start (0: measure their first burst too)")
    parser.add_argument("--kinds", nargs="+", choices=HOSTILE_KINDS, default=list(HOSTILE_KINDS),
                        help="hostile request kinds to send (default: all)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="hard cap of the hostile phase")
    parser.add_argument("--flood", type=int, default=0, help="sockets trickling request heads during the hostile "
                        "phase (e.g. 1100 against --max-connections 1024)")
    parser.add_argument("--max-connections", type=int, default=1024, help="the server's --max-connections")
    parser.add_argument("--max-queue-seconds", type=float, default=2.0, help="the server's --max-queue-seconds "
                        "(small here, so heavy bodies are refused on the tiny model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or str(build_checkpoint(Path(folder) / "tiny"))
        options = ("--header-timeout", "2", "--body-timeout", "2", "--log-level", "info", "--max-connections",
                   str(args.max_connections), "--max-queue-seconds", str(args.max_queue_seconds))
        with served(model, Path(folder) / "serve.log", options) as server:
            result = asyncio.run(run(args, server.port, server.pid))
        text = server.log.read_text()
    report(args, model if args.model else "tiny checkpoint", result, text)


def report(args: argparse.Namespace, model: str, result: dict, log: str) -> None:
    quiet, quiet_lat = result["quiet"]
    mixed, mixed_lat = result["mixed"]
    hostile: Tally = result["hostile"]
    print(f"chaos run: jinav3 serve ({model}, CPU) on loopback; {args.clients} normal clients, "
          f"{args.hostile} hostile clients, {args.requests} distinct normal requests x {args.rounds} passes")
    print(f"hostile requests by kind: {dict(sorted(result['kinds'].items()))}")
    print(f"started while the normal clients ran ({result['seconds']:.1f} s, after a {args.hostile_lead:g} s lead): "
          f"{dict(sorted(result['during'].items()))}")
    rows = [("", "quiet", "hostile mix")]
    rows.append(("normal requests sent", str(quiet.sent), str(mixed.sent)))
    rows.append(("normal answered by status", _statuses(quiet), _statuses(mixed)))
    rows.append(("normal inputs in / vectors out", f"{quiet.inputs} / {quiet.vectors}",
                 f"{mixed.inputs} / {mixed.vectors}"))
    rows.append(("lost (inputs without a vector)", str(quiet.inputs - quiet.vectors),
                 str(mixed.inputs - mixed.vectors)))
    rows.append(("mismatches vs the request alone", str(quiet.mismatches), str(mixed.mismatches)))
    rows.append(("neighbour failures (normal non-200)", str(quiet.sent - quiet.statuses["200"]),
                 str(mixed.sent - mixed.statuses["200"])))
    for name, q, m in zip(("p50 ms", "p95 ms", "p99 ms"), percentiles(quiet_lat), percentiles(mixed_lat),
                          strict=True):
        rows.append((f"normal latency {name}", f"{q:.0f}", f"{m:.0f}"))
    rows.append(("hostile requests sent", "-", str(hostile.sent)))
    rows.append(("hostile answered by status", "-", _statuses(hostile)))
    fives = sum(n for s, n in (quiet.statuses + mixed.statuses + hostile.statuses).items() if s.startswith("5")
                and s != "503")
    rows.append(("5xx answers (503 busy excluded)", "-", str(fives)))
    rows.append(("503 busy answers", "-", str((quiet.statuses + mixed.statuses + hostile.statuses)["503"])))
    before, after = result["rss"]
    rows.append(("server RSS MB before / after", "-", f"{before:.0f} / {after:.0f}"))
    for status in sorted(hostile.answered_in):
        seconds = hostile.answered_in[status]
        rows.append((f"hostile {status} answered in ms (p50 / max)", "-",
                     f"{1000 * float(np.median(seconds)):.0f} / {1000 * max(seconds):.0f}"))
    rows.append(("tracebacks in the server log", "-", str(log.count("Traceback"))))
    rows.append(("disconnect lines in the log (INFO)", "-", str(log.count("client disconnected"))))
    width = max(len(r[0]) for r in rows)
    for name, a, b in rows:
        print(f"| {name:<{width}} | {a:>12} | {b} |")
    q95, m95 = percentiles(quiet_lat)[1], percentiles(mixed_lat)[1]
    print(f"normal p95 under the hostile mix / quiet p95: {m95 / q95:.2f}x")


def _statuses(tally: Tally) -> str:
    return ", ".join(f"{status}: {count}" for status, count in sorted(tally.statuses.items())) or "-"


if __name__ == "__main__":
    main()
