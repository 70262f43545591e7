"""What a 10 MB request that will be refused costs the server: CPU, page faults and wall time per request.

Starts the real ``jinav3 serve`` command on 127.0.0.1 (a tiny random checkpoint unless ``--model``) and sends each
kind of big body ``--repeat`` times over one kept-alive connection, reading the server process's CPU time and
minor page faults from ``/proc`` before and after. Every kind is refused (400 or 422), so the figures are the cost
of receiving, parsing and judging a body: what a hostile client can make the server spend. The chaos run
(``chaos.py``) shows what that cost does to other clients' latency.

    OMP_NUM_THREADS=1 python benchmarks/body_cost.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json
from _serve import cpu_seconds, minor_faults, rss_mb, served

from jinav3.testing import build_checkpoint

MODEL = "jina-embeddings-v3"


def bodies(megabytes: float) -> dict[str, bytes]:
    """Big bodies the server must refuse, each about ``megabytes`` MB."""
    words = int(megabytes * 1e6 / 5)
    item = "word " * 1000
    count = int(megabytes * 1e6 / (len(item) + 3))
    return {
        "one over-long text (400)": json.dumps({"model": MODEL, "input": ["word " * words]}).encode(),
        "over-long text as a bare string (400)": json.dumps({"model": MODEL, "input": "word " * words}).encode(),
        "broken JSON (422)": json.dumps({"model": MODEL, "input": ["word " * words]}).encode()[:-3],
        f"{count:,} texts, the last a number (422)": json.dumps({"model": MODEL, "input": [item] * count + [5]})
        .encode(),
    }


def measure(url: str, pid: int, body: bytes, repeat: int) -> dict[str, float | str]:
    with httpx.Client(timeout=120) as client:
        first = client.post(url, content=body, headers={"Content-Type": "application/json"})  # warm the connection
        cpu, faults, started = cpu_seconds(pid), minor_faults(pid), time.perf_counter()
        for _ in range(repeat):
            client.post(url, content=body, headers={"Content-Type": "application/json"})
        wall = time.perf_counter() - started
        return {"status": first.status_code, "MB": len(body) / 1e6,
                "server CPU ms": 1000 * (cpu_seconds(pid) - cpu) / repeat,
                "minor faults": (minor_faults(pid) - faults) / repeat, "wall ms": 1000 * wall / repeat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random checkpoint)")
    parser.add_argument("--megabytes", type=float, default=10.0, help="size of each body")
    parser.add_argument("--repeat", type=int, default=30, help="requests per kind")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or str(build_checkpoint(Path(folder) / "tiny"))
        with served(model, Path(folder) / "serve.log", ("--log-level", "warning")) as server:
            rss = rss_mb(server.pid)
            rows = {name: measure(server.url, server.pid, body, args.repeat)
                    for name, body in bodies(args.megabytes).items()}
            rss_after = rss_mb(server.pid)
    header = ["body", "status", "MB", "server CPU ms", "minor faults", "wall ms"]
    print_table(f"refused bodies, per request ({args.repeat} each; server RSS {rss:.0f} -> {rss_after:.0f} MB)",
                header, [[name, *(row[key] for key in header[1:])] for name, row in rows.items()])
    write_json(args.json, {"repeat": args.repeat, "rss_mb": [rss, rss_after], "rows": rows})


if __name__ == "__main__":
    main()
