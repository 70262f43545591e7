"""Start the real ``jinav3 serve`` command on 127.0.0.1 for a benchmark, and read its process's CPU counters."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jinav3.testing import serve_command


@dataclass(frozen=True)
class Served:
    port: int
    pid: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/embeddings"


@contextmanager
def served(model: str, log: Path, options: Sequence[str] = ()) -> Iterator[Served]:
    """``jinav3 serve --model model`` (CPU, its output in ``log``), once ``/health`` answers; stopped on exit."""
    with serve_command(model, *options, log=log) as (process, base_url):
        yield Served(urlsplit(base_url).port or 0, process.pid, log)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux ``/proc``)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def minor_faults(pid: int) -> int:
    """Minor page faults of the process so far: each fresh page a big allocation touches costs one."""
    return int(_stat(pid)[7])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
