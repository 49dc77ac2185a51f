"""A cluster's whole lifecycle: stop() leaves nothing behind; `cluster up|status|down` from the CLI."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest
from click.testing import CliRunner

from gameday.cluster.cli import cluster
from gameday.cluster.daemon import read_state, state_dir
from gameday.cluster.local import LocalCluster
from gameday.lifecycle import pid_alive

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("built_binaries")]


def test_stop_kills_every_process_and_removes_the_temp_dir() -> None:
    cluster_ = LocalCluster(nodes=0).start()
    pids = cluster_.pids()
    root = cluster_.control_plane.layout.root
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
    assert all(pid_alive(pid) for pid in pids.values()) and root.is_dir()

    cluster_.stop()
    cluster_.stop()  # idempotent

    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
    assert not root.exists()


def test_cli_up_status_kubeconfig_down() -> None:
    name = f"pytest-{uuid.uuid4().hex[:6]}"
    runner = CliRunner()
    try:
        up = runner.invoke(cluster, ["--name", name, "up", "--nodes", "0"])
        assert up.exit_code == 0, up.output
        state = read_state(state_dir(name))
        assert state and state["status"] == "ready"
        kubeconfig = runner.invoke(cluster, ["--name", name, "kubeconfig"]).output.strip()
        assert kubeconfig == state["kubeconfig"]

        # The cluster outlives the `up` command: another process (kubectl) can use it.
        out = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "ns", "default", "-o", "name"],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "namespace/default", out.stderr

        status = runner.invoke(cluster, ["--name", name, "status"])
        assert status.exit_code == 0 and "running" in status.output and "nodes: 0" in status.output, status.output

        # `services` lists what the service proxy serves, read from the running daemon's state
        services = runner.invoke(cluster, ["--name", name, "services"])
        assert services.exit_code == 0, services.output
        assert re.search(r"default/kubernetes:443\s+http://127\.0\.0\.1:\d+", services.output), services.output
    finally:
        down = runner.invoke(cluster, ["--name", name, "down"])
    assert down.exit_code == 0 and "stopped" in down.output, down.output
    assert not pid_alive(state["daemon_pid"])
    assert [c for c, pid in state["pids"].items() if pid_alive(pid)] == []
    assert not state_dir(name).exists()
    after = runner.invoke(cluster, ["--name", name, "status"])
    assert after.exit_code == 1 and "not running" in after.output
