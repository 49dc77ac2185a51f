"""The real control plane answers kubectl and the Python client, and its controllers work."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from kubernetes import client

from gameday import settings
from gameday.cluster import build
from gameday.cluster.kubeconfig import KubeconfigCluster
from gameday.cluster.local import REHEARSAL_LABEL, LocalCluster, ready_node_count
from gameday.errors import ConfigError
from gameday.lifecycle import wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def namespace(local_cluster: LocalCluster):
    core = client.CoreV1Api(local_cluster.api_client())
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def test_apiserver_reports_the_built_version(local_cluster: LocalCluster) -> None:
    info = client.VersionApi(local_cluster.api_client()).get_code()
    assert info.git_version == build.read_stamp().version
    assert local_cluster.endpoints()["apiserver"].startswith("https://127.0.0.1:")


def test_kubectl_uses_the_written_kubeconfig(local_cluster: LocalCluster) -> None:
    out = subprocess.run(["kubectl", "--kubeconfig", str(local_cluster.kubeconfig), "get", "ns", "-o", "name"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {"namespace/default", "namespace/kube-system"} <= set(out.stdout.split())


def test_python_client_lists_namespaces(local_cluster: LocalCluster) -> None:
    names = {ns.metadata.name for ns in client.CoreV1Api(local_cluster.api_client()).list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_new_namespace_gets_default_service_account_and_root_ca(local_cluster: LocalCluster, namespace: str) -> None:
    core = client.CoreV1Api(local_cluster.api_client())
    wait_until(lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
               timeout=30, what="ServiceAccount default")
    ca = wait_until(lambda: core.list_namespaced_config_map(namespace, field_selector="metadata.name=kube-root-ca.crt").items,
                    timeout=30, what="ConfigMap kube-root-ca.crt")
    cluster_ca = (local_cluster.control_plane.layout.pki.ca.cert).read_text()
    assert ca[0].data["ca.crt"].strip() == cluster_ca.strip()


def _deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "web", "image": "gameday/demo:1.0.0"}]}},
        },
    }


def test_deployment_gets_replicaset_pods_and_a_scheduling_decision(local_cluster: LocalCluster, namespace: str) -> None:
    api = local_cluster.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deployment = apps.create_namespaced_deployment(namespace, _deployment("web", 2))

    replica_sets = wait_until(lambda: apps.list_namespaced_replica_set(namespace).items, timeout=30,
                              what="ReplicaSet of the Deployment")
    assert replica_sets[0].metadata.owner_references[0].uid == deployment.metadata.uid

    pods = wait_until(lambda: (items := core.list_namespaced_pod(namespace).items) and len(items) == 2 and items,
                      timeout=30, what="2 pods")
    assert {p.metadata.owner_references[0].uid for p in pods} == {replica_sets[0].metadata.uid}

    if ready_node_count(api) > 0:
        # A Ready node exists (part B's kubelet): the scheduler must bind both pods to it.
        bound = wait_until(lambda: all(p.spec.node_name for p in core.list_namespaced_pod(namespace).items),
                           timeout=30, what="pods bound to a node")
        assert bound
    else:
        def unschedulable() -> bool:
            conditions = [c for p in core.list_namespaced_pod(namespace).items for c in (p.status.conditions or [])
                          if c.type == "PodScheduled"]
            return len(conditions) == 2 and all(c.status == "False" and c.reason == "Unschedulable"
                                                for c in conditions)

        assert wait_until(unschedulable, timeout=30, what="PodScheduled=False/Unschedulable")
        assert all(p.status.phase == "Pending" for p in core.list_namespaced_pod(namespace).items)


def test_kubeconfig_provider_accepts_only_rehearsal_targets(local_cluster: LocalCluster,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    core = client.CoreV1Api(local_cluster.api_client())
    assert KubeconfigCluster(local_cluster.kubeconfig).start()  # LocalCluster marks kube-system
    core.patch_namespace("kube-system", {"metadata": {"labels": {REHEARSAL_LABEL: None}}})
    try:
        with pytest.raises(ConfigError, match="not marked as a rehearsal target"):
            KubeconfigCluster(local_cluster.kubeconfig).start()
        monkeypatch.setenv(settings.SETTINGS["allow-non-rehearsal"].env, "1")
        assert KubeconfigCluster(local_cluster.kubeconfig).start()
    finally:
        core.patch_namespace("kube-system", {"metadata": {"labels": {REHEARSAL_LABEL: "true"}}})


def test_kubeconfig_provider_accepts_a_marked_namespace(local_cluster: LocalCluster, namespace: str) -> None:
    core = client.CoreV1Api(local_cluster.api_client())
    core.patch_namespace("kube-system", {"metadata": {"labels": {REHEARSAL_LABEL: None}}})
    try:
        with pytest.raises(ConfigError):
            KubeconfigCluster(local_cluster.kubeconfig, namespace=namespace).start()
        core.patch_namespace(namespace, {"metadata": {"annotations": {REHEARSAL_LABEL: "true"}}})
        assert KubeconfigCluster(local_cluster.kubeconfig, namespace=namespace).start()
    finally:
        core.patch_namespace("kube-system", {"metadata": {"labels": {REHEARSAL_LABEL: "true"}}})
