"""How many CPU cores this process may use: the default for nodes that size their own thread pools."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores in this process's affinity mask (a container or `taskset` may give fewer than the
    machine has), else the machine's count. Not torch's default: Ray starts actors with
    OMP_NUM_THREADS=1, whatever they were given."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cores_per_replica(replicas: int) -> int:
    """The usable cores shared among a node's replicas on this machine (at least one each)."""
    return max(1, usable_cores() // max(1, int(replicas)))
