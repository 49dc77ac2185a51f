"""The service proxy against the real control plane: selector switches and VirtualService weights
move real HTTP traffic between real demo processes."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gameday.cluster.local import LocalCluster
from gameday.cluster.proxy import ServiceProxy
from gameday.lifecycle import wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def proxy(local_cluster: LocalCluster) -> ServiceProxy:
    assert isinstance(local_cluster.proxy, ServiceProxy), "the local cluster runs without the service proxy"
    return local_cluster.proxy


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def deployment(name: str, version: str, image: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": "demo", "track": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                         "name": "demo", "image": image, "ports": [{"containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}}]}}}}


def service(name: str, track: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "demo", "track": track},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def deploy(cluster: LocalCluster, ns: str, *objects: dict[str, Any]) -> None:
    kubectl(cluster, "apply", "-n", ns, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                       "items": list(objects)}))
    for obj in objects:
        if obj["kind"] == "Deployment":
            kubectl(cluster, "rollout", "status", f"deployment/{obj['metadata']['name']}", "-n", ns, "--timeout=90s")


def served_versions(address: tuple[str, int], count: int) -> Counter[str]:
    """``count`` requests, each on a new connection (as the load generator's short connections)."""
    seen: Counter[str] = Counter()
    for _ in range(count):
        conn = http.client.HTTPConnection(*address, timeout=5)
        try:
            conn.request("GET", "/version", headers={"Connection": "close"})
            seen[conn.getresponse().getheader("X-Served-By-Version") or "?"] += 1
        except (OSError, http.client.HTTPException):
            seen["failed"] += 1
        finally:
            conn.close()
    return seen


def test_selector_switch_moves_traffic_between_blue_and_green(local_cluster: LocalCluster, proxy: ServiceProxy,
                                                             ns: str) -> None:
    deploy(local_cluster, ns, deployment("blue", "1.0.0", "gameday/demo:1.0.0"),
           deployment("green", "1.1.0", "gameday/demo:1.1.0"), service("demo", "blue"))
    address = proxy.address("demo", 80, namespace=ns)
    wait_until(lambda: served_versions(address, 4) == {"1.0.0": 4}, timeout=20, what="blue serving")
    assert served_versions(address, 20) == {"1.0.0": 20}
    # a keep-alive client that started on blue ...
    keep_alive = http.client.HTTPConnection(*address, timeout=5)
    keep_alive.request("GET", "/version")
    first = keep_alive.getresponse()
    first.read()
    assert first.getheader("X-Served-By-Version") == "1.0.0"
    kubectl(local_cluster, "patch", "service", "demo", "-n", ns, "-p",
            json.dumps({"spec": {"selector": {"app": "demo", "track": "green"}}}))
    wait_until(lambda: served_versions(address, 4) == {"1.1.0": 4}, timeout=20, what="green serving")
    assert served_versions(address, 20) == {"1.1.0": 20}
    # ... follows the switch on the same connection: HTTP is routed per request, as an ingress does
    keep_alive.request("GET", "/version")
    assert keep_alive.getresponse().getheader("X-Served-By-Version") == "1.1.0"
    keep_alive.close()
    services = json.loads(Path(proxy.services_file).read_text())
    assert services[f"{ns}/demo:80"] == "{}:{}".format(*address)


def test_virtual_service_weights_split_new_connections(local_cluster: LocalCluster, proxy: ServiceProxy,
                                                       ns: str) -> None:
    deploy(local_cluster, ns, deployment("stable", "1.0.0", "gameday/demo:1.0.0"),
           deployment("canary", "1.1.0", "gameday/demo:1.1.0", replicas=1),
           service("demo", "stable"), service("demo-stable", "stable"), service("demo-canary", "canary"))
    virtual_service = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "demo"},
        "spec": {"hosts": ["demo"], "http": [{"route": [
            {"destination": {"host": "demo-stable"}, "weight": 75},
            {"destination": {"host": f"demo-canary.{ns}.svc.cluster.local"}, "weight": 25}]}]}}
    kubectl(local_cluster, "apply", "-n", ns, "-f", "-", stdin=json.dumps(virtual_service))
    address = proxy.address("demo", 80, namespace=ns)
    wait_until(lambda: "1.1.0" in served_versions(address, 8), timeout=20, what="the canary taking traffic")
    split = served_versions(address, 200)
    assert split["failed"] == 0
    assert 130 <= split["1.0.0"] <= 170 and 30 <= split["1.1.0"] <= 70, split
    # per request, as Istio does: one keep-alive connection sees the split too
    keep_alive = http.client.HTTPConnection(*address, timeout=5)
    on_one_connection: Counter[str] = Counter()
    for _ in range(100):
        keep_alive.request("GET", "/version")
        response = keep_alive.getresponse()
        response.read()
        on_one_connection[response.getheader("X-Served-By-Version")] += 1
    keep_alive.close()
    assert 60 <= on_one_connection["1.0.0"] <= 90 and 10 <= on_one_connection["1.1.0"] <= 40, on_one_connection
    patch = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
             {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 100}]
    kubectl(local_cluster, "patch", "virtualservice", "demo", "-n", ns, "--type=json", "-p", json.dumps(patch))
    wait_until(lambda: served_versions(address, 6) == {"1.1.0": 6}, timeout=20, what="all traffic on the canary")
    kubectl(local_cluster, "delete", "virtualservice", "demo", "-n", ns)
    wait_until(lambda: served_versions(address, 6) == {"1.0.0": 6}, timeout=20, what="plain service routing")


def test_a_service_without_ready_endpoints_refuses_and_never_dials_out(local_cluster: LocalCluster,
                                                                      proxy: ServiceProxy, ns: str) -> None:
    # a selector-less Service whose EndpointSlice points outside 127/8: the proxy must not dial it
    external = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "outside"},
                "spec": {"ports": [{"name": "http", "port": 80}]}}
    endpoints = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "outside-1", "labels": {"kubernetes.io/service-name": "outside"}},
                 "addressType": "IPv4", "ports": [{"name": "http", "port": 80}],
                 "endpoints": [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}]}
    kubectl(local_cluster, "apply", "-n", ns, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [external, endpoints]}))
    address = proxy.address("outside", 80, namespace=ns)
    conn = http.client.HTTPConnection(*address, timeout=5)
    conn.request("GET", "/version", headers={"Connection": "close"})
    response = conn.getresponse()
    assert response.status == 503 and response.getheader("X-Served-By-Version") is None
    conn.close()


def test_a_rollout_loses_no_request_to_a_pooled_connection(local_cluster: LocalCluster, proxy: ServiceProxy,
                                                          ns: str) -> None:
    deploy(local_cluster, ns, deployment("web", "1.0.0", "gameday/demo:1.0.0"), service("demo", "web"))
    address = proxy.address("demo", 80, namespace=ns)
    wait_until(lambda: served_versions(address, 4) == {"1.0.0": 4}, timeout=20, what="1.0.0 serving")
    opened, reused, failures = proxy.pool.opened, proxy.pool.reused, Counter(proxy.pool.failures)
    seen: Counter[str] = Counter()
    stop = threading.Event()

    def keep_asking() -> None:  # one keep-alive client, as a load generator's user
        conn = http.client.HTTPConnection(*address, timeout=10)
        while not stop.is_set():
            try:
                conn.request("GET", "/version")
                response = conn.getresponse()
                response.read()
                seen[response.getheader("X-Served-By-Version") or f"status {response.status}"] += 1
            except (OSError, http.client.HTTPException):
                seen["failed"] += 1
                conn.close()
            time.sleep(0.005)
        conn.close()

    client = threading.Thread(target=keep_asking, daemon=True)
    client.start()
    try:
        wait_until(lambda: seen["1.0.0"] >= 50, timeout=20, what="requests before the rollout")
        # every pod is replaced: pooled connections to the old ones go stale or are dropped
        kubectl(local_cluster, "set", "image", "deployment/web", "demo=gameday/demo:1.1.0", "-n", ns)
        kubectl(local_cluster, "rollout", "status", "deployment/web", "-n", ns, "--timeout=90s")
        wait_until(lambda: served_versions(address, 4) == {"1.1.0": 4}, timeout=20, what="1.1.0 serving")
        count = seen["1.1.0"]
        wait_until(lambda: seen["1.1.0"] >= count + 50, timeout=20, what="requests after the rollout")
    finally:
        stop.set()
        client.join(timeout=15)
    assert seen["1.0.0"] and seen["1.1.0"] and set(seen) <= {"1.0.0", "1.1.0", "failed"}, seen
    lost = proxy.pool.failures - failures
    # no request failed because of a pooled connection: stale ones (old pods that exited before
    # their endpoints left) were noticed or their GET resent.  What may fail is what failed without
    # a pool too: a NEW connection that a terminating pod took into its backlog, then reset
    # (SIGTERM and the endpoint update race; there is no preStop hook to order them)
    assert lost["pooled"] == 0 and seen["failed"] <= lost["fresh"], (seen, lost)
    # and the backend connections were reused, not dialled per request
    assert proxy.pool.reused - reused > 5 * (proxy.pool.opened - opened), (proxy.pool.opened, proxy.pool.reused)
