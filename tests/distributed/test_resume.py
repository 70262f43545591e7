"""``jinav3 index --ray`` stopped mid-run and resumed: the real CLI in a subprocess with its own local Ray.

One job is stopped twice — by SIGTERM (which must also stop the Ray runtime the command started) and by
``kill -9`` of the driver — and finished with ``--resume``; the output then holds every input document exactly
once. Kept apart from the other Ray tests so that no second Ray instance runs in the pytest process meanwhile.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
pd = pytest.importorskip("pandas")

WORDS = "river stone light city wall market winter bridge harbour letter garden engine tower music".split()


def _corpus(path: Path, count: int) -> tuple[set[str], set[str]]:
    """JSON Lines with ``count`` good documents and a few lines without a usable id; returns the good ids and
    the line numbers (as origins) of the id-less lines."""
    rng = random.Random(18)
    lines, no_id = [], set()
    for i in range(count):
        if i % 97 == 5:
            lines.append('{"id": "broken", "text": ')  # malformed: no id to find it by, only its line
            no_id.add(f"{path} line {len(lines)}")
        text = " ".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 12))).capitalize() + "."
                        for _ in range(rng.randint(1, 4)))
        lines.append(json.dumps({"id": f"doc-{i}", "text": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {f"doc-{i}" for i in range(count)}, no_id


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "jinav3.cli", "index", "--ray", "--address", "local", *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for_parts(out: Path, more_than: int, process: subprocess.Popen, timeout: float = 400) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = len(list(out.glob("part-*.parquet")))
        if parts > more_than:
            return parts
        assert process.poll() is None, "the job ended before it wrote a part"
        time.sleep(0.1)
    raise AssertionError("no part appeared in time")


def _session(session: int) -> list[int]:
    """Processes of the session the command was started in (its Ray runtime included: Ray gives its workers
    their own process groups, but not their own sessions)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _session_gone(session: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while _session(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _session(session)


def _kill_session(session: int) -> None:
    for pid in _session(session):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_stopped_twice_then_resumed_without_duplicates_or_losses(tiny_checkpoint, tmp_path):
    source, out, log = tmp_path / "docs.jsonl", tmp_path / "out", tmp_path / "log.txt"
    ids, no_id = _corpus(source, 1200)
    args = [str(source), "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu", "--batch-size", "5",
            "--chunker", "sentences"]

    first = _start(args, log)  # 1. SIGTERM: exits 143 and takes its Ray runtime along
    try:
        parts = _wait_for_parts(out, 0, first)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()[-3000:]
        assert _session_gone(first.pid, timeout=30) == [], "Ray processes outlived the SIGTERM'd command"
    finally:
        _kill_session(first.pid)
    assert not (out / "_SUCCESS").exists()

    second = _start([*args, "--resume"], log)  # 2. kill -9 of the driver alone
    try:
        _wait_for_parts(out, len(list(out.glob("part-*.parquet"))), second)
        second.kill()
        second.wait(timeout=30)
    finally:
        time.sleep(1)
        _kill_session(second.pid)  # Ray's agents outlive a kill -9 of the driver (nothing can run on SIGKILL)
    assert not (out / "_SUCCESS").exists() and len(list(out.glob("part-*.parquet"))) > parts

    third = subprocess.run(  # 3. resume to the end
        [sys.executable, "-m", "jinav3.cli", "index", "--ray", "--address", "local", *args, "--resume"],
        capture_output=True, text=True, timeout=600,
        env={**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "OMP_NUM_THREADS": "1"})
    assert third.returncode == 0, third.stderr[-3000:]
    assert "already written" in third.stderr and (out / "_SUCCESS").exists()

    rows = pd.read_parquet(out, columns=["source_id", "chunk_index", "error", "origin"])
    good = rows[rows["error"].isna()]
    firsts = good[good["chunk_index"] == 0]
    assert firsts["source_id"].is_unique and set(firsts["source_id"]) == ids  # no duplicates, no losses
    assert not good.duplicated(["source_id", "chunk_index"]).any()
    failed = rows[rows["error"].notna()]
    assert failed["origin"].is_unique and set(failed["origin"]) == no_id
    assert not list(out.glob(".*"))  # no half-written part left behind
