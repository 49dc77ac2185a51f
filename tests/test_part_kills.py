"""Every harness part killed mid-procedure ends the wait on it at once, naming the part: the
harness could not do its job (an ERROR), never a long timeout blamed on the rollback.

One fresh cluster per control-plane or node part (each kill breaks it); the traffic parts
(the service proxy, locust) and moto are killed under a rule's wait or an ECS call.  The
end-to-end path (a `gameday run` whose step becomes an ERROR naming the part) is in
tests/test_harness_parts.py for Postgres and below for etcd mid-rollout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gameday.cluster.local import LocalCluster
from gameday.errors import GameDayError, HarnessPartDied
from gameday.lifecycle import dead_parts, parts_down, pid_alive, wait_until
from gameday.load import ErrorRateAbove, LoadGenerator, LoadProfile, RequestSpec
from gameday.procedures.kubectl import Kubectl

TEST_IMAGES = Path(__file__).parent / "cluster" / "images-test.yaml"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: "test/web:v1", env: [{name: VERSION, value: "1.0.0"}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
PROFILE = LoadProfile(users=2, rate=20, requests=(RequestSpec(path="/"),))
BOUND_S = 20.0  # far under any step timeout (rollout status: 120 s here, 277 s in the finding)


@pytest.fixture
def built_binaries() -> None:
    from gameday.cluster import build

    if not build.is_built():
        pytest.skip(f"Kubernetes binaries not built in {build.bin_dir()}: run `python -m gameday.cluster.build`")


@pytest.fixture
def answering() -> Iterator[str]:
    """A plain keep-alive HTTP service on 127.0.0.1 that answers 200."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def web(built_binaries: None) -> Iterator[tuple[LocalCluster, Kubectl]]:
    with LocalCluster(nodes=1) as cluster:
        assert cluster.kubelet is not None
        cluster.kubelet.catalog.add_file(TEST_IMAGES)  # type: ignore[attr-defined]
        kubectl = Kubectl(cluster.kubeconfig)
        kubectl.apply(DEPLOYMENT)
        kubectl.run("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
        yield cluster, kubectl
    dead_parts()  # what the test killed is no finding for the next one


def kill(cluster: LocalCluster, part: str) -> None:
    if part == "process kubelet":
        cluster.kubelet.crash()  # type: ignore[union-attr]
        return
    pid = cluster.pids()[part]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10  # not wait_until: it rightly stops as soon as a watched part is dead
    while pid_alive(pid) and not parts_down():
        assert time.monotonic() < deadline, f"{part} did not die"
        time.sleep(0.05)


@pytest.mark.parametrize("part", ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                  "process kubelet"])
def test_a_part_killed_mid_rollout_ends_the_rollout_wait_at_once_naming_it(web, part):
    cluster, kubectl = web
    kill(cluster, part)
    began = time.monotonic()
    with pytest.raises(GameDayError) as caught:
        kubectl.run("scale", "deployment/web", "--replicas=2", timeout=60)
        kubectl.run("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    took = time.monotonic() - began
    # either the wait itself stopped on the death, or the command failed and the death is on record
    said = caught.value.one_line() if isinstance(caught.value, HarnessPartDied) else "; ".join(dead_parts())
    assert said.startswith(part) or f"; {part}" in said, (said, caught.value.one_line())
    assert took < BOUND_S, f"{part} killed: the wait took {took:.1f}s ({caught.value.one_line()})"


def test_the_service_proxy_dying_under_load_is_no_alarm_about_the_service(web, tmp_path):
    cluster, _ = web
    url = cluster.service_url("default", "web", 80)
    with LoadGenerator(url, profile=PROFILE, max_seconds=60,
                       workdir=tmp_path / "load") as load:
        cluster.proxy.crash()  # type: ignore[union-attr]
        alarm = ErrorRateAbove(threshold=0.05, for_seconds=0, window_seconds=2)
        began = time.monotonic()
        with pytest.raises(HarnessPartDied, match="service proxy") as caught:
            alarm.wait(load, 60)  # every request now fails: without the watch this would "detect" a fault
        assert time.monotonic() - began < BOUND_S, caught.value.one_line()


def test_locust_killed_under_a_rule_wait_is_named(tmp_path, answering):
    with LoadGenerator(answering, profile=PROFILE, max_seconds=60,
                       workdir=tmp_path / "load") as load:
        os.kill(load._proc.pid, signal.SIGKILL)  # noqa: SLF001 - the part under test
        with pytest.raises(HarnessPartDied, match=r"locust \(the load generator\) \(pid \d+\) was killed by SIGKILL"):
            ErrorRateAbove(threshold=0.05, for_seconds=0, window_seconds=2).wait(load, 60)


def test_locust_ending_at_its_run_time_is_no_death(tmp_path, answering):
    with LoadGenerator(answering, profile=PROFILE, max_seconds=2,
                       workdir=tmp_path / "load") as load:
        wait_until(lambda: not load.running, timeout=30, what="locust to reach its run time")
        assert parts_down() == []


def test_moto_killed_is_named_when_the_ecs_call_fails(tmp_path):
    from gameday.aws.moto_server import MotoServer

    with MotoServer() as moto:
        ecs = moto.client("ecs")
        ecs.list_clusters()
        os.kill(moto._proc.pid, signal.SIGKILL)  # noqa: SLF001 - the part under test
        wait_until(lambda: moto._proc.poll() is not None, timeout=10, what="moto to die")  # noqa: SLF001
        with pytest.raises(Exception):  # noqa: B017 - botocore's connection error: any is fine here
            ecs.list_clusters()
        assert [d for d in dead_parts() if d.startswith("moto (the AWS API)") and "SIGKILL" in d]


STEPS = """\
import os
import signal

from pytest_bdd import given, then, when

from pathlib import Path

from gameday.cluster.local import LocalCluster
from gameday.procedures.kubectl import Kubectl

HERE = {}
DEPLOYMENT = __DEPLOYMENT__


@given("a cluster running web")
def cluster():
    c = HERE["cluster"] = LocalCluster(nodes=1).start()
    c.kubelet.catalog.add_file(Path(__IMAGES__))
    HERE["kubectl"] = k = Kubectl(c.kubeconfig)
    k.apply(DEPLOYMENT)
    k.run("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)


@when("etcd is killed")
def kill():
    os.kill(HERE["cluster"].pids()["etcd"], signal.SIGKILL)


@then("web scales to 2 replicas")
def scale():
    HERE["kubectl"].run("scale", "deployment/web", "--replicas=2", timeout=120)
    HERE["kubectl"].run("rollout", "status", "deployment/web", "--timeout=270s", timeout=277)
""".replace("__DEPLOYMENT__", repr(DEPLOYMENT)).replace("__IMAGES__", repr(str(TEST_IMAGES)))

FEATURE = """\
Feature: a harness part dies
  Scenario: etcd dies mid-rollout
    Given a cluster running web
    When etcd is killed
    Then web scales to 2 replicas

  Scenario: one that needs the cluster after it
    Given a cluster running web
    Then web scales to 2 replicas
"""


def test_etcd_killed_mid_rollout_is_an_error_naming_etcd_not_a_failed_rollback(built_binaries, tmp_path):
    (tmp_path / "kill_steps.py").write_text(STEPS)
    (tmp_path / "kill.feature").write_text(FEATURE)
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gameday.cli", "run", "kill.feature", "--steps", str(tmp_path / "kill_steps.py"),
         "--reports", str(tmp_path / "reports"), "--run-id", "r1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=dict(os.environ))
    took = time.monotonic() - began
    journal = json.loads((tmp_path / "reports" / "r1" / "journal.json").read_text())
    (scenario,) = journal["scenarios"]  # the run stopped cleanly: the cluster every scenario needs is broken
    assert scenario["status"] == "error", scenario
    assert "harness part died during this step: etcd (pid" in scenario["error"], scenario["error"]
    assert result.returncode == 2, result.stdout + result.stderr
    [stopped] = [e for e in journal["run"]["events"] if e["kind"] == "run-stopped"]
    assert stopped["message"].startswith("stopped after this scenario: etcd (pid"), stopped
    assert "the scenarios after it were not run" in result.stdout
    assert "run stopped after this scenario: etcd" in (tmp_path / "reports" / "r1" / "summary.md").read_text()
    assert took < 120, f"the run took {took:.0f}s: the rollout wait went on after etcd died"
