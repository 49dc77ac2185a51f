"""The kubelet's /metrics/resource (Prometheus text), what metrics-server scrapes for `kubectl top`.

Per container: the CPU seconds and resident memory of its process group (the container's
process and everything it started), read from /proc, and its start time; per node: the
machine's CPU seconds and working set (all nodes of one process kubelet share a machine).
Samples carry millisecond timestamps, as the real kubelet's do.

Example::

    text = resource_metrics([ContainerSample("ns", "web-1", "web", pid=4242, started_at=1.7e9)])
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ContainerSample:
    namespace: str
    pod: str
    container: str
    pid: int  # the container's process; its process group is the container
    started_at: float


@dataclass(frozen=True)
class ProcUsage:
    cpu_seconds: float
    rss_bytes: int


def group_usage(proc: Path = PROC) -> dict[int, ProcUsage]:
    """Process group id -> summed CPU (including reaped children) and RSS of its processes."""
    usage: dict[int, list[float]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            # after "pid (comm)": state ppid pgrp session ... utime(12) stime(13) cutime(14) cstime(15) ... rss(22)
            pgrp = int(fields[2])
            ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
            totals = usage.setdefault(pgrp, [0.0, 0.0])
            totals[0] += ticks / CLOCK_TICKS
            totals[1] += int(fields[21]) * PAGE_SIZE
    return {pgrp: ProcUsage(cpu, int(rss)) for pgrp, (cpu, rss) in usage.items()}


def node_usage(proc: Path = PROC) -> ProcUsage:
    cpu = (proc / "stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for v in cpu[:8]) - int(cpu[3]) - int(cpu[4])  # all but idle and iowait
    meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024
               for line in (proc / "meminfo").read_text().splitlines() if line.split()}
    return ProcUsage(busy / CLOCK_TICKS, meminfo["MemTotal"] - meminfo.get("MemAvailable", 0))


def _labels(sample: ContainerSample) -> str:
    def quote(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return f'container="{quote(sample.container)}",namespace="{quote(sample.namespace)}",pod="{quote(sample.pod)}"'


def resource_metrics(samples: list[ContainerSample], proc: Path = PROC) -> bytes:
    stamp = int(time.time() * 1000)
    groups = group_usage(proc)
    node = node_usage(proc)
    lines = [
        "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds",
        "# TYPE node_cpu_usage_seconds_total counter",
        f"node_cpu_usage_seconds_total {node.cpu_seconds:.6f} {stamp}",
        "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes",
        "# TYPE node_memory_working_set_bytes gauge",
        f"node_memory_working_set_bytes {node.rss_bytes} {stamp}",
    ]
    rows: dict[str, list[str]] = {"container_cpu_usage_seconds_total": [], "container_memory_working_set_bytes": [],
                                  "container_start_time_seconds": []}
    for sample in samples:
        usage = groups.get(sample.pid)
        if usage is None:
            continue  # exited since the list was taken
        labels = _labels(sample)
        # metrics-server drops a container reporting exactly zero; a process always used a tick or a page
        rows["container_cpu_usage_seconds_total"].append(
            f"container_cpu_usage_seconds_total{{{labels}}} {max(usage.cpu_seconds, 0.001):.6f} {stamp}")
        rows["container_memory_working_set_bytes"].append(
            f"container_memory_working_set_bytes{{{labels}}} {max(usage.rss_bytes, PAGE_SIZE)} {stamp}")
        rows["container_start_time_seconds"].append(
            f"container_start_time_seconds{{{labels}}} {sample.started_at:.6f} {stamp}")
    kinds = {"container_cpu_usage_seconds_total": "counter", "container_memory_working_set_bytes": "gauge",
             "container_start_time_seconds": "gauge"}
    for name, series in rows.items():
        lines += [f"# TYPE {name} {kinds[name]}", *series]
    lines += ["# TYPE scrape_error gauge", "scrape_error 0"]
    return ("\n".join(lines) + "\n").encode()
