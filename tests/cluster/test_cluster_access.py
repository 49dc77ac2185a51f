"""How a rehearsal reaches a Service on any cluster provider: the embedded proxy's published
addresses, else a kubectl port-forward the harness opens and closes; and namespaces only on
clusters marked for rehearsal."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest

from gameday.cluster import access
from gameday.cluster.kubeconfig import KubeconfigCluster
from gameday.cluster.local import LocalCluster
from gameday.errors import ConfigError
from gameday.lifecycle import wait_until

pytestmark = pytest.mark.cluster

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: gameday/demo:1.0.0
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def get(url: str) -> tuple[int, str]:
    """The first 200 within 20 s (the proxy learns of a ready endpoint a moment after the rollout)."""

    def answer() -> tuple[int, str]:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.headers.get("X-Served-By-Version", "")

    return wait_until(answer, timeout=20, interval=0.2, what=f"GET {url}", transient=(OSError,))


@pytest.fixture
def web(local_cluster: LocalCluster, ns: str) -> str:
    kubectl = ["kubectl", "--kubeconfig", str(local_cluster.kubeconfig), "-n", ns]
    subprocess.run([*kubectl, "apply", "-f", "-"], input=APP, check=True, capture_output=True, text=True, timeout=60)
    subprocess.run([*kubectl, "rollout", "status", "deployment/web", "--timeout=60s"], check=True, capture_output=True,
                   timeout=90)
    return ns


def test_a_kubeconfig_cluster_finds_the_published_address_or_port_forwards(local_cluster: LocalCluster, web: str,
                                                                           monkeypatch: pytest.MonkeyPatch):
    cluster = KubeconfigCluster(local_cluster.kubeconfig).start()  # kube-system is marked: ours made it
    try:
        published = cluster.service_url(web, "web", 80)
        assert published == local_cluster.service_url(web, "web", 80)  # the proxy's own listener
        assert get(published + "/version") == (200, "1.0.0")
        # a cluster with no gameday proxy: kubectl port-forward through the process kubelet
        monkeypatch.setattr(access, "published_services", lambda api: None)
        forwarded = cluster.service_url(web, "web", 80)
        assert forwarded != published and get(forwarded + "/version") == (200, "1.0.0")
        [forward] = cluster._forwards.values()
        proc = forward._proc
    finally:
        cluster.stop()
    assert proc is not None and proc.poll() is not None  # closed with the provider


def test_namespaces_are_made_only_on_clusters_marked_for_rehearsal(local_cluster: LocalCluster, tmp_path):
    from kubernetes import client

    core = client.CoreV1Api(local_cluster.api_client())
    cluster = KubeconfigCluster(local_cluster.kubeconfig).start()
    name = f"made-{tmp_path.name[-6:].lower().replace('_', '-')}".strip("-")
    cluster.prepare_namespace(name)
    labels = core.read_namespace(name).metadata.labels
    assert labels["gameday.io/rehearsal"] == "true"
    cluster.stop()  # a namespace gameday made on a cluster it did not make goes with the run
    def going() -> bool:
        try:
            return core.read_namespace(name).status.phase == "Terminating"
        except client.ApiException as exc:
            return exc.status == 404

    wait_until(going, timeout=30, what="namespace deletion")
    # unmark kube-system: the same cluster is now someone else's, and gameday refuses it
    core.patch_namespace("kube-system", {"metadata": {"labels": {"gameday.io/rehearsal": None}}})
    try:
        with pytest.raises(ConfigError, match="not marked as a rehearsal target"):
            KubeconfigCluster(local_cluster.kubeconfig).start()
    finally:
        core.patch_namespace("kube-system", {"metadata": {"labels": {"gameday.io/rehearsal": "true"}}})
