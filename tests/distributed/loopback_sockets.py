"""Which TCP sockets of a process tree leave the loopback interface, read from ``/proc`` (Linux only).

Ray rewrites ``127.0.0.1`` to the machine's network address; the multi-node test binds its nodes to ``127.0.0.2``
instead and uses this to prove that no connection of the cluster or the job touched a non-loopback address.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"


@dataclass(frozen=True)
class Socket:
    """One row of ``/proc/net/tcp{,6}``: its local and remote endpoints, TCP state (hex) and inode."""

    local: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]
    remote: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]
    state: str
    inode: int


def _address(field: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    host, port = field.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is little-endian
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address, int(port, 16)


def tcp_sockets() -> list[Socket]:
    """Every TCP socket of this network namespace, TIME-WAIT ones (which no process owns any more) included."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            sockets.append(Socket(_address(fields[1]), _address(fields[2]), fields[3], int(fields[9])))
    return sockets


def descendants(root: int) -> set[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def socket_inodes(pids: set[int]) -> set[int]:
    """Inodes of the sockets these processes hold open."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
        except OSError:
            continue  # the process ended meanwhile
    return inodes


def _loopback_or_wildcard(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_unspecified


class OffLoopbackWatch:
    """Collects the sockets of a process tree that touch a non-loopback address, sampled by :meth:`sample`.

    A socket counts if a process of the tree holds it, or if it is a TIME-WAIT remnant on a port the tree
    listens on (a connection that came and went between two samples leaves one for a minute)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.ports: set[int] = set()
        self.offending: set[Socket] = set()
        self.samples = 0

    def sample(self) -> None:
        inodes = socket_inodes(descendants(self.root))
        sockets = tcp_sockets()
        self.ports |= {s.local[1] for s in sockets if s.inode in inodes and s.state == LISTEN}
        for s in sockets:
            ours = (s.inode != 0 and s.inode in inodes) or s.local[1] in self.ports or s.remote[1] in self.ports
            if ours and not (_loopback_or_wildcard(s.local[0]) and _loopback_or_wildcard(s.remote[0])):
                self.offending.add(s)
        self.samples += 1
