"""Controlled shutdown of the active controller: SIGTERM it, and time until
another broker's `weir cluster status` (DescribeCluster) names a new one.
Three local brokers per run (tools/tests/cluster.py), on 127.89.RUN.1-3.

    tools/tests/clients/.venv/bin/python bench/controller_gap.py target/release/weir 5
"""
import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "tests"))
from cluster import Cluster  # noqa: E402


def controller(cluster, broker):
    """The active controller `broker` names (-1: none)."""
    status = cluster.weir("cluster", "status", "-b", cluster.address(broker))
    return int(re.search(r"controller (-?\d+)", status).group(1))


def one_gap(weir, run):
    data = tempfile.mkdtemp(prefix="controller-gap-")
    cluster = Cluster(weir, f"127.89.{run}", 19192, data, data)
    cluster.start_all()
    try:
        old = controller(cluster, 1)
        while old < 0:
            time.sleep(0.2)
            old = controller(cluster, 1)
        time.sleep(3)  # every broker registered and heartbeating
        other = 1 if old != 1 else 2
        signalled = time.monotonic()
        cluster.procs[old].send_signal(signal.SIGTERM)
        new = controller(cluster, other)
        while new < 0 or new == old:
            time.sleep(0.02)
            new = controller(cluster, other)
        gap = time.monotonic() - signalled
        print(f"run {run}: controller {old} -> {new} after {gap:.3f} s")
        return gap
    finally:
        cluster.stop()


def main():
    weir, runs = sys.argv[1], int(sys.argv[2])
    gaps = sorted(one_gap(weir, run) for run in range(runs))
    print(f"median {gaps[len(gaps) // 2]:.3f} s, range {gaps[0]:.3f}-{gaps[-1]:.3f} s")


if __name__ == "__main__":
    main()
