"""A real Ray cluster on this machine loses a worker node mid-job, and ``jinav3 index --ray --address`` still
indexes every document exactly once, with the core's vectors.

The cluster (ray's ``cluster_utils``): a head without CPUs for tasks, so that nothing runs beside the driver, and
two worker nodes of 3 logical CPUs. Every node is bound to ``127.0.0.2``: Ray rewrites ``127.0.0.1`` and
``localhost`` to the machine's network address, where no test traffic may go; a watch over ``/proc/net/tcp``
proves that none did. The job is the real CLI in a subprocess joining the cluster by address, with two one-CPU
actors. Once it has written a few parts, the raylet of a worker node that hosts an embedding actor is killed with
SIGKILL (its workers and object store die with it); the job must finish on the node that is left.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pd = pytest.importorskip("pandas")

from ray.cluster_utils import Cluster

from jinav3.distributed.loopback_cluster import start_loopback_cluster
from tests.distributed.loopback_sockets import OffLoopbackWatch, descendants

HOST = "127.0.0.2"
WORDS = "river stone light city wall market winter bridge harbour letter garden engine tower music".split()
DOCUMENTS = 900


def _corpus(path: Path) -> dict[str, str]:
    rng = random.Random(37)
    texts = {}
    for i in range(DOCUMENTS):
        texts[f"doc-{i}"] = " ".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 12))).capitalize() + "."
                                     for _ in range(rng.randint(1, 5)))
    path.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in texts.items()), encoding="utf-8")
    return texts


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to the cloud metadata address either
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    started = start_loopback_cluster(worker_nodes=2, cpus_per_node=3, host=HOST)
    yield started
    started.shutdown()


def _raylet_hosting_an_actor(cluster: Cluster) -> int | None:
    """PID of a worker node's raylet with an embedding actor among its workers (Ray titles an actor's worker
    process ``ray::<ClassName>``), or None while no actor has started."""
    for node in cluster.worker_nodes:
        raylet = node.all_processes["raylet"][0].process.pid
        for pid in descendants(raylet) - {raylet}:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::") and b"Worker" in title.split(b"\0")[0]:
                return raylet
    return None


def _parts(out: Path) -> int:
    return len(list(out.glob("part-*.parquet")))


def test_a_worker_node_killed_mid_job_loses_and_duplicates_nothing(cluster, tiny_checkpoint, tiny_embedder,
                                                                    tmp_path):
    source, out, log = tmp_path / "docs.jsonl", tmp_path / "out", tmp_path / "job.log"
    texts = _corpus(source)
    watch = OffLoopbackWatch(os.getpid())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    argv = [sys.executable, "-m", "jinav3.cli", "index", "--ray", "--address", cluster.address, str(source),
            "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu", "--actors", "2",
            "--batch-size", "4"]
    with log.open("wb") as sink:
        job = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline, killed = time.monotonic() + 240, None
        while job.poll() is None and time.monotonic() < deadline:
            watch.sample()
            raylet = _raylet_hosting_an_actor(cluster) if killed is None and _parts(out) >= 5 else None
            if raylet is not None:
                os.kill(raylet, signal.SIGKILL)
                killed = (_parts(out), (out / "_SUCCESS").exists())
            time.sleep(0.1)
        assert job.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, log.read_text()[-4000:]
    finally:
        if job.poll() is None:
            job.kill()
    report = log.read_text()
    assert killed is not None, f"no worker node was killed mid-job\n{report[-3000:]}"
    parts_at_kill, finished_at_kill = killed
    assert not finished_at_kill and _parts(out) > parts_at_kill  # the node died while work was left
    assert f"{DOCUMENTS} documents in, {DOCUMENTS} indexed" in report and "0 failed" in report
    assert (out / "_SUCCESS").exists() and not list(out.glob(".*"))
    assert watch.samples > 10 and not watch.offending, sorted(map(str, watch.offending))

    rows = pd.read_parquet(out).sort_values(["source_id", "chunk_index"])
    assert rows["error"].isna().all()
    assert not rows.duplicated(["source_id", "chunk_index"]).any()  # none duplicated
    ids = sorted(texts)
    assert sorted(set(rows["source_id"])) == ids  # none lost
    expected = tiny_embedder.late_chunk_many([texts[i] for i in ids], chunker="sentences", task="retrieval.passage")
    want = [(i, c.index, c.start, c.end, c.text) for i, chunks in zip(ids, expected, strict=True) for c in chunks]
    got = list(zip(rows["source_id"], rows["chunk_index"], rows["start"], rows["end"], rows["text"], strict=True))
    assert got == want
    np.testing.assert_allclose(np.stack(rows["embedding"].to_numpy()).astype(np.float32),
                               np.stack([c.embedding for chunks in expected for c in chunks]), rtol=1e-5, atol=1e-6)


def _network_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: routed like any outside address
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_watch_sees_a_connection_to_the_network_address_and_not_one_on_loopback():
    """The check above is not vacuous: a connection of this process to the machine's network address is caught,
    one to 127.0.0.2 is not."""
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        watch = OffLoopbackWatch(os.getpid())
        with socket.create_connection((HOST, port)), server.accept()[0]:
            watch.sample()
        assert watch.offending == set() and port in watch.ports
        address = _network_address()
        if address is None:
            pytest.skip("this machine has no network address besides loopback")
        with socket.create_connection((address, port)), server.accept()[0]:
            watch.sample()
        assert {s.local for s in watch.offending} >= {(ipaddress.ip_address(address), port)}
