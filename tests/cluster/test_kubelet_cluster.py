"""The process kubelet against the real control plane, checked with kubectl as an SRE would.

Uses the session's LocalCluster (tests/cluster/conftest.py), adds the test-only images
(tests/cluster/images-test.yaml) to its catalog and shortens the restart back-off.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gameday.cluster.kubelet import ProcessKubelet
from gameday.cluster.local import LocalCluster
from gameday.lifecycle import pid_alive, wait_until

pytestmark = pytest.mark.cluster






def kubectl(cluster: LocalCluster, *args: str, check: bool = True, timeout: float = 90) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args],
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout + (done.stderr if not check else "")


def apply(cluster: LocalCluster, manifest: dict[str, Any]) -> None:
    subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", "-"],
                   input=json.dumps(manifest), text=True, check=True, capture_output=True, timeout=60)


def demo_deployment(name: str, namespace: str, image: str, replicas: int = 3) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "demo", "image": image, "ports": [{"containerPort": 8080, "name": "http"}],
                 "env": [{"name": "DEMO_ACCESS_LOG", "value": "1"}],
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container], "terminationGracePeriodSeconds": 5}}}}


def pod_objects(cluster: LocalCluster, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    return json.loads(kubectl(cluster, "get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]


def test_nodes_are_ready_with_renewed_leases_and_no_taints(cluster: LocalCluster) -> None:
    nodes = json.loads(kubectl(cluster, "get", "nodes", "-o", "json"))["items"]
    assert nodes and all(
        {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"] == "True" for n in nodes)
    assert all(n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0 for n in nodes)
    coordination = client.CoordinationV1Api(cluster.api_client())
    name = nodes[0]["metadata"]["name"]
    first = coordination.read_namespaced_lease(name, "kube-node-lease").spec.renew_time
    wait_until(lambda: coordination.read_namespaced_lease(name, "kube-node-lease").spec.renew_time > first,
               timeout=15, what="a renewed node Lease")
    assert "Ready" in kubectl(cluster, "get", "nodes")
    assert not any(n["spec"].get("taints") for n in json.loads(kubectl(cluster, "get", "nodes", "-o", "json"))["items"])


def test_deployment_becomes_available_and_logs_work(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, demo_deployment("demo", ns, "gameday/demo:1.0.0"))
    kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=90s")
    kubectl(cluster, "wait", "deployment/demo", "-n", ns, "--for=condition=Available", "--timeout=30s")
    pods = pod_objects(cluster, ns, "app=demo")
    assert len(pods) == 3
    for pod in pods:
        local = pod["metadata"]["annotations"]["gameday.io/local-address"]
        host, port = local.rsplit(":", 1)
        assert host.startswith("127.") and port == "8080"
        assert pod["status"]["podIP"].startswith("198.1")
        with urllib.request.urlopen(f"http://{local}/version", timeout=5) as resp:
            assert resp.headers["X-Served-By-Version"] == "1.0.0"
    logs = kubectl(cluster, "logs", "-n", ns, "-l", "app=demo", "--tail=5", "--prefix")
    prefixes = {line.split("]")[0] for line in logs.splitlines() if line.startswith("[pod/")}
    assert len(prefixes) == 3, logs
    assert all(sum(line.startswith(p + "]") for line in logs.splitlines()) <= 5 for p in prefixes)


def _restart_counts(cluster: LocalCluster, ns: str, image: str) -> list[int]:
    return [p["status"]["containerStatuses"][0]["restartCount"] for p in pod_objects(cluster, ns, "app=demo")
            if p["spec"]["containers"][0]["image"] == image and p["status"].get("containerStatuses")]


def test_crashing_image_stalls_and_rollout_undo_restores(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, demo_deployment("demo", ns, "gameday/demo:1.0.0"))
    kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=90s")
    kubectl(cluster, "set", "image", "deployment/demo", "demo=gameday/demo:2.0.0-crash", "-n", ns)
    wait_until(lambda: "CrashLoopBackOff" in kubectl(cluster, "get", "pods", "-n", ns), timeout=60,
               what="CrashLoopBackOff in kubectl get pods")
    seen = max(_restart_counts(cluster, ns, "gameday/demo:2.0.0-crash"))
    wait_until(lambda: max(_restart_counts(cluster, ns, "gameday/demo:2.0.0-crash")) > seen, timeout=30,
               what="a growing restartCount")
    stalled = kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=3s", check=False)
    assert "successfully rolled out" not in stalled
    kubectl(cluster, "rollout", "undo", "deployment/demo", "-n", ns)
    kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=90s")
    images = {p["spec"]["containers"][0]["image"] for p in pod_objects(cluster, ns, "app=demo")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"gameday/demo:1.0.0"}
    history = kubectl(cluster, "rollout", "history", "deployment/demo", "-n", ns)
    assert {"2", "3"} <= {line.split()[0] for line in history.splitlines()[2:] if line.strip()}
    kubectl(cluster, "set", "image", "deployment/demo", "demo=gameday/demo:1.1.0", "-n", ns)
    kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=90s")
    kubectl(cluster, "rollout", "undo", "deployment/demo", "-n", ns, "--to-revision=3")
    kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=90s")
    image = kubectl(cluster, "get", "deployment/demo", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image == "gameday/demo:1.0.0"


def test_scale_down_and_delete_really_end_the_processes(cluster: LocalCluster, ns: str) -> None:
    kubelet = cluster.kubelet
    assert isinstance(kubelet, ProcessKubelet)
    apply(cluster, demo_deployment("demo", ns, "gameday/demo:1.0.0"))
    kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=90s")
    pids = {key: info["pids"]["demo"] for key, info in kubelet.pods().items() if key.startswith(ns + "/")}
    assert len(pids) == 3 and all(pid_alive(p) for p in pids.values())
    kubectl(cluster, "scale", "deployment/demo", "-n", ns, "--replicas=1")
    wait_until(lambda: len(pod_objects(cluster, ns, "app=demo")) == 1, timeout=30, what="one pod left")
    survivor = pod_objects(cluster, ns, "app=demo")[0]["metadata"]["name"]
    gone = [pid for key, pid in pids.items() if not key.endswith("/" + survivor)]
    assert len(gone) == 2 and not any(pid_alive(p) for p in gone)
    kubectl(cluster, "delete", "pod", survivor, "-n", ns, "--wait=true", "--timeout=30s")
    assert not pid_alive(pids[f"{ns}/{survivor}"])
    kubectl(cluster, "rollout", "status", "deployment/demo", "-n", ns, "--timeout=90s")  # replaced


def test_missing_image_shows_err_image_pull_then_back_off(cluster: LocalCluster, ns: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ghost", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "nowhere/ghost:9.9"}]}}
    apply(cluster, pod)
    reasons: set[str] = set()

    def waiting() -> bool:
        status = pod_objects(cluster, ns)[0]["status"].get("containerStatuses") or [{}]
        state = status[0].get("state", {}).get("waiting", {})
        reasons.add(state.get("reason", ""))
        if state.get("reason") == "ImagePullBackOff":
            assert "nowhere/ghost:9.9" in state["message"]
        return {"ErrImagePull", "ImagePullBackOff"} <= reasons

    wait_until(waiting, timeout=30, interval=0.3, what="ErrImagePull then ImagePullBackOff")
    assert pod_objects(cluster, ns)[0]["status"]["phase"] == "Pending"


def test_probes_drive_readiness_and_liveness_restarts(cluster: LocalCluster, ns: str, tmp_path: Path) -> None:
    flag = tmp_path / "unready"
    flag.touch()
    ready_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gate", "namespace": ns},
                 "spec": {"containers": [{"name": "web", "image": "test/web:v1", "ports": [{"containerPort": 8080}],
                                          "env": [{"name": "UNREADY_FILE", "value": str(flag)}],
                                          "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080},
                                                             "periodSeconds": 1, "failureThreshold": 1}}]}}
    dying_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dying", "namespace": ns},
                 "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                     "name": "web", "image": "test/web:v1", "ports": [{"containerPort": 8080}],
                     "livenessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2}}]}}
    apply(cluster, ready_pod)
    apply(cluster, dying_pod)

    def status(name: str) -> dict[str, Any]:
        return client.CoreV1Api(cluster.api_client()).read_namespaced_pod(name, ns).to_dict()["status"]

    wait_until(lambda: status("gate")["phase"] == "Running", timeout=30, what="gate running")
    time.sleep(2)
    assert not status("gate")["container_statuses"][0]["ready"]  # /ready answers 503
    flag.unlink()
    kubectl(cluster, "wait", "pod/gate", "-n", ns, "--for=condition=Ready", "--timeout=20s")
    wait_until(lambda: status("dying")["container_statuses"][0]["restart_count"] >= 2, timeout=40,
               what="liveness restarts")
    last = status("dying")["container_statuses"][0]["last_state"]["terminated"]
    assert "liveness" in (last.get("message") or "")


def test_configmap_volume_is_a_file_that_follows_updates(cluster: LocalCluster, ns: str) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_config_map(ns, {"metadata": {"name": "web-config"}, "data": {"greeting.txt": "hello"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cfg", "namespace": ns},
           "spec": {"volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
                    "containers": [{"name": "web", "image": "test/web:v1", "ports": [{"containerPort": 8080}],
                                    "env": [{"name": "CONFIG_FILE", "value": "/etc/web/greeting.txt"}],
                                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]}]}}
    apply(cluster, pod)
    kubectl(cluster, "wait", "pod/cfg", "-n", ns, "--for=condition=Ready", "--timeout=30s")
    local = pod_objects(cluster, ns)[0]["metadata"]["annotations"]["gameday.io/local-address"]

    def served() -> str:
        with urllib.request.urlopen(f"http://{local}/config", timeout=5) as resp:
            return resp.read().decode()

    assert served() == "hello"
    core.patch_namespaced_config_map("web-config", ns, {"data": {"greeting.txt": "bonjour"}})
    wait_until(lambda: served() == "bonjour", timeout=15, what="the updated ConfigMap file")


def test_job_runs_to_completion_with_restart_policy_never(cluster: LocalCluster, ns: str) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": ns},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
               "name": "job", "image": "test/job:1",
               "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}}
    apply(cluster, job)
    kubectl(cluster, "wait", "job/once", "-n", ns, "--for=condition=complete", "--timeout=60s")
    pod = pod_objects(cluster, ns, "job-name=once")[0]
    assert pod["status"]["phase"] == "Succeeded"
    assert kubectl(cluster, "logs", "-n", ns, "job/once").strip() == f"job {pod['metadata']['name']}"


def test_stop_kills_every_pod_process(cluster: LocalCluster, ns: str, tmp_path: Path) -> None:
    node = f"extra-{uuid.uuid4().hex[:5]}"
    extra = ProcessKubelet(cluster.kubeconfig, [node], cluster.kubelet.catalog, tmp_path)  # type: ignore[union-attr]
    with extra:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pinned", "namespace": ns},
               "spec": {"nodeName": node, "containers": [{"name": "web", "image": "test/web:v1"}]}}
        apply(cluster, pod)
        pid = wait_until(lambda: extra.pods().get(f"{ns}/pinned", {}).get("pids", {}).get("web"), timeout=30,
                         what="the pinned pod's process")
        assert pid_alive(pid)
    assert not pid_alive(pid)
    core = client.CoreV1Api(cluster.api_client())
    core.delete_namespaced_pod("pinned", ns, grace_period_seconds=0)  # no kubelet left to finalize it
    core.delete_node(node)


def test_init_containers_run_first_and_a_failed_one_fails_the_pod(cluster: LocalCluster, ns: str) -> None:
    def pod(name: str, exit_code: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                "spec": {"restartPolicy": "Never",
                         "initContainers": [{"name": "migrate", "image": "test/job:1",
                                             "env": [{"name": "EXIT", "value": exit_code}]}],
                         "containers": [{"name": "web", "image": "test/web:v1", "ports": [{"containerPort": 8080}]}]}}

    apply(cluster, pod("good", "0"))
    apply(cluster, pod("bad", "1"))
    kubectl(cluster, "wait", "pod/good", "-n", ns, "--for=condition=Ready", "--timeout=30s")
    good = {p["metadata"]["name"]: p for p in pod_objects(cluster, ns)}["good"]["status"]
    assert good["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    kubectl(cluster, "wait", "pod/bad", "-n", ns, "--for=jsonpath={.status.phase}=Failed", "--timeout=30s")
    bad = {p["metadata"]["name"]: p for p in pod_objects(cluster, ns)}["bad"]["status"]
    assert bad["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert "Init:Error" in kubectl(cluster, "get", "pod", "bad", "-n", ns)
