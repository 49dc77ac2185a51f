"""Node registration, node Lease renewal and status heartbeats for the process kubelet.

The node lifecycle controller taints a node (and evicts its pods) when its Lease in
kube-node-lease is not renewed, so one thread renews every node's Lease every few
seconds and re-posts the Ready condition now and then.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger("gameday.cluster.kubelet")

LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 4.0
STATUS_EVERY_SECONDS = 20.0
KUBELET_VERSION = "v1.34.0-gameday"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """MicroTime, as Lease renewTime wants it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def node_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": _arch(),
                "gameday.io/process-kubelet": "true",
            },
        },
        "spec": {},
    }


def node_status(name: str, kubelet_port: int, *, cpu: str, memory: str, pods: str) -> dict[str, Any]:
    stamp = now_rfc3339()
    resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "20Gi"}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}

    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
            condition("Ready", "True", "KubeletReady", "gameday process kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": name, "systemUUID": name, "bootID": str(os.getpid()),
            "kernelVersion": platform.release(), "osImage": "gameday process kubelet",
            "containerRuntimeVersion": "gameday-process://1", "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": _arch(),
        },
    }


class NodeAgent:
    """Registers the nodes and keeps them alive (Leases + heartbeats) until stopped."""

    def __init__(self, api: client.ApiClient, nodes: list[str], kubelet_port: int,
                 *, cpu: str = "4", memory: str = "8Gi", pods: str = "110") -> None:
        self._core = client.CoreV1Api(api)
        self._coord = client.CoordinationV1Api(api)
        self._nodes = list(nodes)
        self._port = kubelet_port
        self._resources = {"cpu": cpu, "memory": memory, "pods": pods}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._since: dict[str, str] = {}

    def register(self) -> None:
        for name in self._nodes:
            try:
                self._core.create_node(node_manifest(name))
            except ApiException as exc:
                if exc.status != 409:  # an existing node (kubelet restart) is taken over
                    raise
            self._post_status(name)
            self._renew_lease(name)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kubelet-node", daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        since_status = 0.0
        while not self._stopped.wait(LEASE_RENEW_SECONDS):
            since_status += LEASE_RENEW_SECONDS
            for name in self._nodes:
                try:
                    self._renew_lease(name)
                    if since_status >= STATUS_EVERY_SECONDS:
                        self._post_status(name)
                except Exception as exc:  # noqa: BLE001 - try again next round
                    log.debug("heartbeat for node %s failed: %s", name, exc)
            if since_status >= STATUS_EVERY_SECONDS:
                since_status = 0.0

    def _post_status(self, name: str) -> None:
        status = node_status(name, self._port, **self._resources)
        # conditions never change here, so their lastTransitionTime stays the first one posted
        first = self._since.setdefault(name, status["conditions"][0]["lastTransitionTime"])
        for condition in status["conditions"]:
            condition["lastTransitionTime"] = first
        self._core.patch_node_status(name, [{"op": "replace", "path": "/status", "value": status}])

    def _renew_lease(self, name: str) -> None:
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()}
        try:
            self._coord.patch_namespaced_lease(name, "kube-node-lease", {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise
            node = self._core.read_node(name)
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.metadata.uid}
            body = {"metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": [owner]},
                    "spec": spec}
            self._coord.create_namespaced_lease("kube-node-lease", body)
