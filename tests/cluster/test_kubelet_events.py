"""Node-side Events from the process kubelet, read back with `kubectl describe pod` / `get events`.

Uses the session's LocalCluster with the test-only images and a 1s restart back-off.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gameday.cluster.kubelet_events import EventRecorder
from gameday.cluster.local import LocalCluster
from gameday.lifecycle import wait_until


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def pod(name: str, ns: str, container: dict[str, Any], **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                       "spec": {"containers": [container], **spec}})


def events_of(cluster: LocalCluster, ns: str, name: str) -> list[dict[str, Any]]:
    out = kubectl(cluster, "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return [e for e in json.loads(out)["items"] if e["source"].get("component") == "kubelet"]


def describe_events(cluster: LocalCluster, ns: str, name: str) -> str:
    return kubectl(cluster, "describe", "pod", name, "-n", ns).split("Events:", 1)[1]


@pytest.mark.cluster
def test_crash_looping_pod_shows_back_off_and_aggregated_events(cluster: LocalCluster, ns: str) -> None:
    kubectl(cluster, "apply", "-f", "-", stdin=pod("crash", ns, {"name": "app", "image": "test/web:crash"}))

    def restarted_twice() -> bool:
        started = [e for e in events_of(cluster, ns, "crash") if e["reason"] == "Started"]
        return bool(started) and started[0]["count"] >= 3

    wait_until(restarted_twice, timeout=60, interval=1, what="three Started for the crashing container")
    wait_until(lambda: "BackOff" in describe_events(cluster, ns, "crash"), timeout=30, interval=1,
               what="BackOff in kubectl describe pod")
    events = events_of(cluster, ns, "crash")
    reasons = {e["reason"] for e in events}
    assert {"Pulled", "Created", "Started", "BackOff"} <= reasons
    for event in events:
        assert event["involvedObject"]["fieldPath"] == "spec.containers{app}"
        assert event["source"]["host"] == "gameday-node-1" and event["reportingComponent"] == "kubelet"
    assert len([e for e in events if e["reason"] == "Started"]) == 1  # repeats are one Event, counted
    uid = events[0]["involvedObject"]["uid"]
    back_off = next(e for e in events if e["reason"] == "BackOff")
    assert back_off["type"] == "Warning"
    assert back_off["message"] == f"Back-off restarting failed container app in pod crash_{ns}({uid})"
    described = describe_events(cluster, ns, "crash")
    assert "Back-off restarting failed container app in pod" in described
    assert "Started container app" in described and "kubelet" in described
    assert "(x" in described  # kubectl shows the aggregated count


@pytest.mark.cluster
def test_never_ready_pod_shows_unhealthy_with_the_probe_output(cluster: LocalCluster, ns: str, tmp_path: Path) -> None:
    flag = tmp_path / "unready"
    flag.touch()
    web = {"name": "web", "image": "test/web:v1", "ports": [{"containerPort": 8080}],
           "env": [{"name": "UNREADY_FILE", "value": str(flag)}],
           "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}}
    kubectl(cluster, "apply", "-f", "-", stdin=pod("never-ready", ns, web))

    def unhealthy() -> list[dict[str, Any]]:
        return [e for e in events_of(cluster, ns, "never-ready") if e["reason"] == "Unhealthy"
                and e["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 503"]

    wait_until(lambda: bool(unhealthy()) and unhealthy()[0]["count"] >= 3, timeout=60, interval=1,
               what="an Unhealthy event counted three times")
    assert len(unhealthy()) == 1 and unhealthy()[0]["type"] == "Warning"
    described = describe_events(cluster, ns, "never-ready")
    assert "Unhealthy" in described and "Readiness probe failed: HTTP probe failed with statuscode: 503" in described
    table = kubectl(cluster, "get", "events", "-n", ns)
    assert "Unhealthy" in table and "pod/never-ready" in table


@pytest.mark.cluster
def test_missing_image_and_deletion_events(cluster: LocalCluster, ns: str) -> None:
    kubectl(cluster, "apply", "-f", "-", stdin=pod("ghost", ns, {"name": "c", "image": "nowhere/ghost:9.9"}))
    kubectl(cluster, "apply", "-f", "-", stdin=pod("doomed", ns, {"name": "web", "image": "test/web:v1"},
                                                   terminationGracePeriodSeconds=2))
    wait_until(lambda: "Back-off pulling image" in describe_events(cluster, ns, "ghost"), timeout=60, interval=1,
               what="image pull back-off events")
    ghost = {(e["reason"], e["message"]) for e in events_of(cluster, ns, "ghost")}
    assert ("Failed", "Error: ErrImagePull") in ghost and ("BackOff", 'Back-off pulling image "nowhere/ghost:9.9"') in ghost
    assert any(r == "Failed" and m.startswith('Failed to pull image "nowhere/ghost:9.9": ') for r, m in ghost)
    kubectl(cluster, "wait", "pod/doomed", "-n", ns, "--for=condition=Ready", "--timeout=30s")
    kubectl(cluster, "delete", "pod", "doomed", "-n", ns, "--wait=true", "--timeout=30s")
    wait_until(lambda: any(e["reason"] == "Killing" and e["message"] == "Stopping container web"
                           for e in events_of(cluster, ns, "doomed")), timeout=20, interval=1, what="a Killing event")


@pytest.mark.cluster
def test_recorder_aggregates_repeats_into_one_event(cluster: LocalCluster, ns: str) -> None:
    recorder = EventRecorder(client.CoreV1Api(cluster.api_client())).start()
    fake = {"metadata": {"name": "probe-target", "namespace": ns, "uid": str(uuid.uuid4())}}
    try:
        for _ in range(5):
            recorder.emit(fake, "spec.containers{c}", "Warning", "Unhealthy", "Liveness probe failed: nope", "node-x")
        recorder.emit(fake, "spec.containers{c}", "Normal", "Started", "Started container c", "node-x")
        wait_until(lambda: recorder.pending() == 0, timeout=10, what="events written")
        for _ in range(2):
            recorder.emit(fake, "spec.containers{c}", "Warning", "Unhealthy", "Liveness probe failed: nope", "node-x")
    finally:
        recorder.stop()  # flushes the last count
    events = {e["reason"]: e for e in events_of(cluster, ns, "probe-target")}
    assert set(events) == {"Unhealthy", "Started"}
    assert events["Unhealthy"]["count"] == 7 and events["Started"]["count"] == 1


def test_recorder_never_blocks_or_raises_without_an_api() -> None:
    config = client.Configuration()
    config.host = "https://127.0.0.1:9"  # nothing listens
    api = client.ApiClient(config)
    recorder = EventRecorder(client.CoreV1Api(api)).start()
    fake = {"metadata": {"name": "p", "namespace": "default", "uid": "u"}}
    started = time.monotonic()
    for index in range(2000):
        recorder.emit(fake, "spec.containers{c}", "Warning", "Unhealthy", f"failure {index % 10}", "node-x")
    assert time.monotonic() - started < 1.0
    recorder.stop()
    assert time.monotonic() - started < 10
    api.close()
