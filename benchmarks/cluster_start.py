"""Cold start of the local cluster with cached binaries: time to API ready, to first Ready node, to stopped.

    python benchmarks/cluster_start.py [--runs 3] [--nodes 1]

Each run starts a fresh LocalCluster (new PKI, empty etcd) and stops it; the figures are
per-component readiness times and their median over the runs.  The binaries must be built
(`python -m gameday.cluster.build`); the build itself is not timed here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from gameday.cluster import build
from gameday.cluster.local import LocalCluster
from gameday.errors import GameDayError


def one_run(nodes: int) -> dict[str, float]:
    t0 = time.monotonic()
    cluster = LocalCluster(nodes=nodes)
    try:
        cluster.start()
        timings = cluster.control_plane.timings
        figures = {f"{name} ready (s)": timings[name] for name in ("etcd", "kube-apiserver",
                                                                    "kube-controller-manager", "kube-scheduler")}
        figures["API ready: /readyz 200, from start (s)"] = timings["api_ready"]
        figures["controllers ready: SA default exists (s)"] = cluster.timings["control_plane_s"]
        if "nodes_ready_s" in cluster.timings:
            figures[f"{nodes} node(s) Ready after control plane (s)"] = cluster.timings["nodes_ready_s"]
        figures["cluster ready, total (s)"] = round(time.monotonic() - t0, 2)
    finally:
        t1 = time.monotonic()
        cluster.stop()
    figures["stop (s)"] = round(time.monotonic() - t1, 2)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts to measure (1-10)")
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    runs = max(1, min(args.runs, 10))  # bounded: each run costs ~10-30 s of two busy cores
    if not build.is_built():
        print(f"binaries not built in {build.bin_dir()}: run `python -m gameday.cluster.build`", file=sys.stderr)
        return 2
    stamp = build.read_stamp()
    print(f"Kubernetes {stamp.version}, etcd {stamp.etcd_version}; last build took {stamp.seconds:.0f}s "
          "(cold on 2 cores: ~7 min with module downloads; a warm Go cache only relinks)")
    for name, size in stamp.sizes.items():
        print(f"  {name:<26} {size / 1e6:7.1f} MB")
    results: list[dict[str, float]] = []
    try:
        for index in range(runs):
            results.append(one_run(args.nodes))
            print(f"run {index + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[-1].items()), flush=True)
    except GameDayError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    print(f"\nmedian of {runs} cold start(s), nodes={args.nodes}:")
    for key in results[0]:
        values = [r[key] for r in results if key in r]
        print(f"  {key:<44} {statistics.median(values):7.2f}   (min {min(values):.2f}, max {max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
