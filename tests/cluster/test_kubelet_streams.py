"""`kubectl exec` and `kubectl port-forward` through the real kube-apiserver to the process kubelet.

kubectl speaks WebSockets to the apiserver, which speaks SPDY/3.1 to the kubelet.  Every
kubectl started here is stopped by the test (``kubectl_process``); afterwards the kubelet
must have no exec / port-forward session left open.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gameday.cluster.kubelet import ProcessKubelet
from gameday.cluster.local import LocalCluster
from gameday.lifecycle import wait_until

pytestmark = pytest.mark.cluster

@pytest.fixture(scope="module")
def cluster(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The conftest's cluster; after the module, no exec / port-forward session may be left open."""
    yield cluster
    server = cluster.kubelet._server  # type: ignore[union-attr]
    # a session ends within the job's join bound (5 s) and the session's linger after its peer hangs up
    wait_until(lambda: server.session_count == 0, timeout=30, what="no exec / port-forward session left open",
               logs=lambda: "\n".join(server.describe_sessions()))


def kubectl_argv(cluster: LocalCluster, *args: str) -> list[str]:
    return ["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args]


def kubectl(cluster: LocalCluster, *args: str, stdin: bytes | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(kubectl_argv(cluster, *args), input=stdin, capture_output=True, timeout=timeout,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


@contextlib.contextmanager
def kubectl_process(cluster: LocalCluster, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(kubectl_argv(cluster, *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def web(cluster: LocalCluster) -> Iterator[dict[str, Any]]:
    """A namespace with Deployment and Service "web" (test/web:v1, one replica); its pod and address."""
    core = client.CoreV1Api(cluster.api_client())
    ns = f"streams-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    labels = {"app": "web"}
    container = {"name": "web", "image": "test/web:v1", "ports": [{"containerPort": 8080}],
                 "env": [{"name": "GREETING", "value": "hello"}],
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}}
    manifests = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]
    subprocess.run(kubectl_argv(cluster, "apply", "-f", "-"), input=json.dumps({"kind": "List", "apiVersion": "v1",
                   "items": manifests}).encode(), check=True, capture_output=True, timeout=60)
    done = kubectl(cluster, "rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=100)
    assert done.returncode == 0, done.stderr
    pods = json.loads(kubectl(cluster, "get", "pods", "-n", ns, "-l", "app=web", "-o", "json").stdout)["items"]
    pod = pods[0]
    host = pod["metadata"]["annotations"]["gameday.io/local-address"].rsplit(":", 1)[0]
    yield {"ns": ns, "pod": pod["metadata"]["name"], "host": host}
    core.delete_namespace(ns, grace_period_seconds=0)


def test_exec_runs_in_the_pod_environment_and_propagates_the_exit_code(cluster: LocalCluster, web: dict) -> None:
    done = kubectl(cluster, "exec", web["pod"], "-n", web["ns"], "--", "sh", "-c", "echo $HOST $GREETING; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout.decode().split() == [web["host"], "hello"]
    assert b"command terminated with exit code 3" in done.stderr
    ok = kubectl(cluster, "exec", "deploy/web", "-n", web["ns"], "--", "sh", "-c", "pwd; echo to-stderr >&2")
    assert ok.returncode == 0 and ok.stderr.decode().strip() == "to-stderr"
    assert Path(ok.stdout.decode().strip()).name == json.loads(kubectl(
        cluster, "get", "pod", web["pod"], "-n", web["ns"], "-o", "json").stdout)["metadata"]["uid"]


def test_exec_stdin_reaches_the_command(cluster: LocalCluster, web: dict) -> None:
    done = kubectl(cluster, "exec", "-i", web["pod"], "-n", web["ns"], "--", "cat", stdin=b"hi\n")
    assert done.returncode == 0 and done.stdout == b"hi\n", done.stderr
    blob = os.urandom(300_000)  # several hundred SPDY data frames each way
    echoed = kubectl(cluster, "exec", "-i", web["pod"], "-n", web["ns"], "--", "cat", stdin=blob)
    assert echoed.returncode == 0 and echoed.stdout == blob, echoed.stderr


def test_exec_localhost_means_the_pod_itself(cluster: LocalCluster, web: dict) -> None:
    fetch = "import urllib.request as u; print(u.urlopen('http://localhost:8080/health', timeout=5).read().decode())"
    done = kubectl(cluster, "exec", "deploy/web", "-n", web["ns"], "--", sys.executable, "-c", fetch)
    assert done.returncode == 0 and done.stdout.decode().strip() == "v1", done.stderr


def test_exec_errors_are_reported_like_a_real_kubelet(cluster: LocalCluster, web: dict) -> None:
    missing = kubectl(cluster, "exec", web["pod"], "-n", web["ns"], "--", "no-such-command")
    assert missing.returncode == 1
    assert b'exec: "no-such-command": executable file not found in $PATH' in missing.stderr


def test_exec_with_a_tty(cluster: LocalCluster, web: dict) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal 33 rows x 101 columns
        os.execvp("kubectl", kubectl_argv(cluster, "exec", "-it", web["pod"], "-n", web["ns"], "--", "sh"))
    out = b""

    def read_until(pattern: bytes, timeout: float = 20) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while not re.search(pattern, out):
            assert time.monotonic() < deadline, f"no {pattern!r} in {out!r}"
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        read_until(rb"[#$] ")
        os.write(fd, b"stty size; tty; echo $TERM\n")
        read_until(rb"xterm\r\n")
        os.write(fd, b"exit 5\n")
        read_until(rb"exit code 5")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 5
        assert b"33 101" in out and b"/dev/pts/" in out
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def _scan_for(marker: str, *, but: int | None = None) -> list[int]:
    """The processes whose argv holds ``marker``, ``but`` one (the kubectl client, whose argv holds it too)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != but:
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


def test_exec_command_dies_with_the_kubectl_session(cluster: LocalCluster, web: dict) -> None:
    marker = f"gameday-exec-{uuid.uuid4().hex[:8]}"
    with kubectl_process(cluster, "exec", web["pod"], "-n", web["ns"], "--", "sh", "-c",
                         f"sleep 600; echo {marker}") as exec_proc:
        # the command itself, not kubectl: stopping kubectl before its exec reached the kubelet proves nothing
        wait_until(lambda: any(_scan_for(marker, but=exec_proc.pid)), timeout=20, what="the exec'd command running")
    wait_until(lambda: not _scan_for(marker), timeout=20, what="the exec'd command gone with kubectl")


def _forwarded_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
    assert match, f"kubectl port-forward said {line!r}"
    return int(match.group(1))


@pytest.mark.parametrize("target", ["pod", "svc/web", "deploy/web"])
def test_port_forward_reaches_the_pod(cluster: LocalCluster, web: dict, target: str) -> None:
    resource, remote = (f"pod/{web['pod']}", "8080") if target == "pod" else (target, "80" if "svc" in target
                                                                              else "8080")
    with kubectl_process(cluster, "port-forward", resource, "-n", web["ns"], f":{remote}") as proc:
        port = _forwarded_port(proc)
        for attempt in range(3):  # one SPDY stream pair per connection
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/{attempt}", timeout=10) as resp:
                assert resp.read() == b"v1\n" and resp.headers["X-Served-By-Version"] == "v1"
        assert proc.poll() is None
    logs = kubectl(cluster, "logs", web["pod"], "-n", web["ns"]).stdout.decode()
    assert "request /hello/2" in logs


def test_port_forward_to_a_closed_port_reports_the_error(cluster: LocalCluster, web: dict) -> None:
    with kubectl_process(cluster, "port-forward", f"pod/{web['pod']}", "-n", web["ns"], ":9") as proc:
        port = _forwarded_port(proc)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        proc.wait(20)  # kubectl 1.32 gives up on an error from the kubelet ("lost connection to pod")
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    assert f"dial tcp {web['host']}:9: connect: connection refused" in stderr


def test_kubelet_stop_ends_open_sessions(cluster: LocalCluster, web: dict, tmp_path: Path) -> None:
    node = f"streams-{uuid.uuid4().hex[:5]}"
    before = set(threading.enumerate())
    extra = ProcessKubelet(cluster.kubeconfig, [node], cluster.kubelet.catalog, tmp_path)  # type: ignore[union-attr]
    marker = f"gameday-exec-{uuid.uuid4().hex[:8]}"
    pinned = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pinned", "namespace": web["ns"]},
              "spec": {"nodeName": node, "containers": [{"name": "web", "image": "test/web:v1"}]}}
    try:
        with extra:
            subprocess.run(kubectl_argv(cluster, "apply", "-f", "-"), input=json.dumps(pinned).encode(), check=True,
                           capture_output=True, timeout=60)
            kubectl(cluster, "wait", "pod/pinned", "-n", web["ns"], "--for=condition=Ready", "--timeout=30s")
            with kubectl_process(cluster, "exec", "pinned", "-n", web["ns"], "--", "sh", "-c",
                                 f"sleep 600; echo {marker}") as exec_proc, \
                    kubectl_process(cluster, "port-forward", "pod/pinned", "-n", web["ns"], ":8080") as forward:
                port = _forwarded_port(forward)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                    assert resp.read() == b"v1\n"
                wait_until(lambda: extra.endpoints()["stream_sessions"] == 2 and any(_scan_for(marker, but=exec_proc.pid)),
                           timeout=20, what="an open exec and port-forward session")
                extra.stop()
                # the exec'd command is gone (the kubectl client, whose argv holds the marker too, may still be exiting)
                assert not _scan_for(marker, but=exec_proc.pid)
                exec_proc.wait(20)  # kubectl notices the kubelet went away
        leftover = [t.name for t in threading.enumerate() if t not in before and t.is_alive()
                    and t.name.startswith(("kubelet-", "exec-", "port-forward", "pod-", "log-", "Thread-"))]
        assert not leftover
    finally:
        client.CoreV1Api(cluster.api_client()).delete_namespaced_pod("pinned", web["ns"], grace_period_seconds=0)
        client.CoreV1Api(cluster.api_client()).delete_node(node)
