"""`kubectl top` through the real metrics-server scraping the process kubelet's /metrics/resource.

metrics-server is optional: these cluster tests run only when it was built into the
binaries cache (`python -m gameday.cluster.build --metrics-server`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from gameday.cluster import build
from gameday.cluster.kubelet_metrics import ContainerSample, resource_metrics
from gameday.cluster.local import LocalCluster
from gameday.lifecycle import wait_until


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_resource_metrics_cover_the_process_group_and_the_node() -> None:
    sample = ContainerSample("ns", "p", "c", os.getpgrp(), time.time() - 5)
    text = resource_metrics([sample, ContainerSample("ns", "gone", "c", 2**22 + 7, 0.0)]).decode()
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+) \d{13}$", text, re.M)}
    labels = '{container="c",namespace="ns",pod="p"}'
    assert values[f"container_cpu_usage_seconds_total{labels}"] > 0
    assert values[f"container_memory_working_set_bytes{labels}"] > 1_000_000
    assert values[f"container_start_time_seconds{labels}"] == pytest.approx(sample.started_at, abs=0.01)
    assert values["node_cpu_usage_seconds_total"] > 0 and values["node_memory_working_set_bytes"] > 0
    assert 'pod="gone"' not in text  # a process that is not there is left out, not reported as zero


@pytest.fixture(scope="module")
def metered_cluster(built_binaries: None) -> Iterator[LocalCluster]:
    """A cluster of its own with metrics-server on (GAMEDAY_METRICS_SERVER=1)."""
    if not (build.bin_dir() / "metrics-server").is_file():
        pytest.skip("metrics-server not built: run `python -m gameday.cluster.build --metrics-server`")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAMEDAY_METRICS_SERVER", "1")
        with LocalCluster(nodes=1) as cluster:
            yield cluster


@pytest.mark.cluster
@pytest.mark.slow
def test_kubectl_top_shows_nodes_and_pods(metered_cluster: LocalCluster) -> None:
    local_cluster, ns = metered_cluster, "default"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "busy", "namespace": ns},
           "spec": {"containers": [{"name": "app", "image": "gameday/demo:1.0.0"}]}}
    assert kubectl(local_cluster, "apply", "-f", "-", stdin=json.dumps(pod)).returncode == 0
    assert kubectl(local_cluster, "wait", "pod/busy", "-n", ns, "--for=condition=Ready", "--timeout=60s").returncode == 0

    def top_pod() -> str:
        done = kubectl(local_cluster, "top", "pod", "busy", "-n", ns, "--containers")
        return done.stdout if done.returncode == 0 else ""

    # metrics-server needs two scrapes (15s apart) of a container before it reports its CPU
    out = wait_until(top_pod, timeout=120, interval=3, what="kubectl top pod busy")
    row = out.splitlines()[1].split()
    assert row[:2] == ["busy", "app"] and row[2].endswith("m") and row[3].endswith("Mi") and int(row[3][:-2]) > 0
    nodes = wait_until(lambda: kubectl(local_cluster, "top", "node").stdout, timeout=60, interval=3,
                       what="kubectl top node")
    assert re.search(r"^gameday-node-1\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%", nodes, re.M), nodes
