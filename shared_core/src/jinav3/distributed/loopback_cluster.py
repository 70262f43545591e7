"""A Ray cluster of several nodes on this one machine, all bound to a loopback address, for tests and benchmarks.

Ray rewrites ``127.0.0.1`` and ``localhost`` to the machine's network address, so the nodes are bound to
``127.0.0.2`` (any other ``127/8`` address works): then nothing the cluster or a job joining it by
``--address 127.0.0.2:PORT`` sends leaves the loopback interface. The head holds no CPUs, so every task and
actor runs on a worker node and a driver joining the cluster attaches to the head (Ray prefers it among the nodes
of one host), which outlives any worker node a test kills.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

LOOPBACK_HOST = "127.0.0.2"


def start_loopback_cluster(worker_nodes: int, cpus_per_node: float, host: str = LOOPBACK_HOST,
                           health_check_ms: int = 500) -> Cluster:
    """Start a head without CPUs and ``worker_nodes`` nodes of ``cpus_per_node`` logical CPUs; join it with
    ``cluster.address``, stop it with ``cluster.shutdown()``.

    A node whose raylet dies is declared dead after 4 missed health checks of ``health_check_ms`` (Ray's default
    waits 5 x 3 s). Usage reports to the cloud metadata address are switched off for this process and the nodes.
    """
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    head = {"num_cpus": 0, "node_ip_address": host, "include_dashboard": False,
            "_system_config": {"health_check_period_ms": health_check_ms, "health_check_failure_threshold": 4}}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(worker_nodes):
            cluster.add_node(num_cpus=cpus_per_node, node_ip_address=host)
        cluster.wait_for_nodes()
    except BaseException:
        cluster.shutdown()
        raise
    return cluster
