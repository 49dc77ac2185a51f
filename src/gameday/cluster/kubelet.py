"""ProcessKubelet: the local cluster's nodes, running each pod's containers as local processes.

One ProcessKubelet serves N nodes: it registers their Node objects and keeps their
Leases fresh (kubelet_node), watches pods bound to them and runs one worker per pod
(kubelet_pods), records node-side Events (kubelet_events), and serves container logs,
exec and port-forward over HTTPS (kubelet_server, kubelet_streams).

Pod addresses: the API refuses loopback endpoints, so each pod gets an API-side IP in
198.18.0.0/15 (RFC 2544 benchmarking, never dialled) in status.podIP, and a real
address 127.<b>.x.y on which its processes listen ($HOST).  The real address is in the
pod annotation ``gameday.io/local-address: 127.b.x.y:PORT`` for the service proxy.

Environment knobs: GAMEDAY_KUBELET_BACKOFF_BASE (seconds, default 10) and
GAMEDAY_KUBELET_BACKOFF_MAX (default 300) set the restart / image-pull back-off.

Example::

    kubelet = ProcessKubelet(kubeconfig, ["node-1"], ImageCatalog.load(), workdir)
    with kubelet:
        ...  # pods scheduled to node-1 now run as processes
"""

from __future__ import annotations

import json
import logging
import random
import threading
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from gameday import settings
from gameday.cluster.kubelet_containers import Backoff
from gameday.cluster.kubelet_events import EventRecorder
from gameday.cluster.kubelet_metrics import ContainerSample, resource_metrics
from gameday.cluster.kubelet_node import NodeAgent
from gameday.cluster.kubelet_pods import LOCAL_ADDRESS_ANNOTATION, KubeletContext, PodWorker
from gameday.cluster.kubelet_server import KubeletHTTPServer, LogSource
from gameday.cluster.kubelet_streams import ExecTarget, StreamBackend
from gameday.cluster.kubelet_volumes import Obj, mount_map, referenced_configmaps
from gameday.cluster.kubelet_watch import Informer, api_client_for, wait_all_synced
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.images import ImageCatalog
from gameday.lifecycle import Provider, ThreadPart, forget_part, free_port, watch_part

log = logging.getLogger("gameday.cluster.kubelet")

__all__ = ["ProcessKubelet", "AddressPool", "LOCAL_ADDRESS_ANNOTATION"]

SYNC_TIMEOUT_S = 30.0


class AddressPool:
    """Pairs of (local 127.b.x.y, API-side 198.18.x.y / 198.19.x.y) addresses, never reused.

    The local /16 and the first index are picked at random per kubelet, so two clusters on
    one machine, or two kubelets on one cluster, do not collide.
    """

    def __init__(self, second_octet: int | None = None) -> None:
        self._octet = second_octet if second_octet is not None else random.randint(100, 250)
        self._next = 0 if second_octet is not None else random.randrange(0, 2 * 65536)
        self._lock = threading.Lock()

    def allocate(self) -> tuple[str, str]:
        with self._lock:
            while True:
                self._next += 1
                index = self._next % (2 * 65536)
                low = index & 0xFF
                if low not in (0, 255):
                    break
        third = (index >> 8) & 0xFF
        api_second = 18 + (index >> 16)
        return f"127.{self._octet}.{third}.{low}", f"198.{api_second}.{third}.{low}"


def backoff_from_env() -> Backoff:
    try:
        base = settings.get_float("kubelet-backoff-base")
        maximum = settings.get_float("kubelet-backoff-max")
    except ValueError:
        raise ConfigError("GAMEDAY_KUBELET_BACKOFF_BASE/MAX must be numbers of seconds",
                          fix="e.g. GAMEDAY_KUBELET_BACKOFF_BASE=1") from None
    return Backoff(base=base, maximum=max(base, maximum))


class ProcessKubelet(Provider):
    name = "process-kubelet"

    def __init__(self, kubeconfig: Path, nodes: list[str], catalog: ImageCatalog, workdir: Path,
                 *, backoff: Backoff | None = None) -> None:
        if not nodes:
            raise ConfigError("the process kubelet needs at least one node name", fix="pass nodes=['node-1']")
        self.kubeconfig = Path(kubeconfig)
        self.nodes = list(nodes)
        self.catalog = catalog
        self.workdir = Path(workdir)
        self._backoff = backoff or backoff_from_env()
        self.addresses = AddressPool()
        self._api: client.ApiClient | None = None
        self._server: KubeletHTTPServer | None = None
        self._node_agent: NodeAgent | None = None
        self._informers: list[Informer] = []
        self._workers: dict[str, PodWorker] = {}  # pod uid -> worker
        self._lock = threading.RLock()
        self._stopping = False
        self._ctx: KubeletContext | None = None
        self._events: EventRecorder | None = None
        self._parts: list[ThreadPart] = []

    @property
    def backoff(self) -> Backoff:
        return self._backoff

    @backoff.setter
    def backoff(self, value: Backoff) -> None:
        """Pods created from now on use ``value`` (tests shorten the back-off this way)."""
        self._backoff = value
        if self._ctx is not None:
            self._ctx.backoff = value

    # -- Provider -------------------------------------------------------------------------
    def start(self) -> ProcessKubelet:
        if self._api is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._api = api_client_for(self.kubeconfig)
        core = client.CoreV1Api(self._api)
        streams = StreamBackend(exec_target=self._exec_target, forward_host=self._forward_host)
        self._server = KubeletHTTPServer(free_port(), self._find_logs, self.workdir / "pki", streams=streams,
                                         metrics=self._resource_metrics)
        self._server.start()
        self._node_agent = NodeAgent(self._api, self.nodes, self._server.port)
        try:
            self._node_agent.register()
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise EnvironmentNotReady(f"process kubelet could not register nodes {', '.join(self.nodes)}: {reason}",
                                      fix="check that the kube-apiserver answers") from None
        self._node_agent.start()
        self._events = EventRecorder(core).start()
        self._ctx = KubeletContext(
            core=core, catalog=self.catalog, workdir=self.workdir, backoff=self._backoff,
            configmaps=self._configmap, secrets=self._secret, forget=self._forget, events=self._events)
        self._configmaps = Informer("configmaps", core.list_config_map_for_all_namespaces,
                                    self._on_configmap)
        self._pods = Informer("pods", core.list_pod_for_all_namespaces, self._on_pod)
        self._informers = [self._configmaps.start(), self._pods.start()]
        if not wait_all_synced(self._informers, SYNC_TIMEOUT_S):
            raise EnvironmentNotReady(f"process kubelet could not list pods/configmaps within {SYNC_TIMEOUT_S:g}s",
                                      fix="check that the kube-apiserver answers")
        # its loops are harness parts: if one ends, a step waiting on pods is told so at once
        loops = [self._node_agent.thread, self._pods.thread]
        self._parts = [ThreadPart(thread) for thread in loops if thread is not None]
        for part in self._parts:
            watch_part(f"process kubelet ({', '.join(self.nodes)})", part, shared=True)
        return self

    def crash(self) -> None:
        """What a killed kubelet leaves behind: its loops stop (no heartbeats, no pod sync, no
        exec/logs server) and nothing is cleaned up; the pods' processes keep running, as a
        node's containers outlive its kubelet.  A fault for rehearsals and for gameday's own tests."""
        for informer in self._informers:
            informer.stop()
        if self._node_agent is not None:
            self._node_agent.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def stop(self) -> None:
        for part in self._parts:
            forget_part(part)
        self._parts = []
        self._stopping = True
        for informer in self._informers:
            informer.stop()
        self._informers = []
        with self._lock:
            workers = list(self._workers.values())
        threads = [threading.Thread(target=w.shutdown, daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        if self._node_agent is not None:
            self._node_agent.stop()
            self._node_agent = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._events is not None:
            self._events.stop()
            self._events = None
        if self._api is not None:
            self._api.close()
            self._api = None

    def endpoints(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "kubelet_https": f"https://127.0.0.1:{self._server.port}" if self._server else None,
            "stream_sessions": self._server.session_count if self._server else 0,  # open exec/port-forward
            "pods": self.pods(),
        }

    def pods(self) -> dict[str, dict[str, Any]]:
        """ns/name -> local address, API-side IP and container process ids (for tests and reports)."""
        with self._lock:
            workers = list(self._workers.values())
        return {w.key: {"host": w.host, "pod_ip": w.pod_ip,
                        "pids": {r.name: r.proc.pid for r in w.runs if r.proc is not None}}
                for w in workers}

    # -- watch handlers -------------------------------------------------------------------
    def _on_pod(self, kind: str, pod: Obj) -> None:
        if self._stopping or pod["spec"].get("nodeName") not in self.nodes:
            return
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.vanished()
                return
            if worker is not None:
                worker.update(pod)
                return
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get(
                    "deletionTimestamp"):
                return  # finished before this kubelet started: nothing to run
            host, pod_ip = self.addresses.allocate()
            assert self._ctx is not None
            worker = PodWorker(self._ctx, pod, host, pod_ip)
            self._workers[uid] = worker
        worker.start()

    def _on_configmap(self, kind: str, cm: Obj) -> None:
        key = f"{cm['metadata']['namespace']}/{cm['metadata']['name']}"
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            if key in referenced_configmaps(worker.pod):
                worker.configmap_changed()

    def _forget(self, uid: str) -> None:
        with self._lock:
            self._workers.pop(uid, None)

    # -- lookups for workers and the log server ---------------------------------------------
    def _configmap(self, namespace: str, name: str) -> Obj | None:
        return self._configmaps.get(f"{namespace}/{name}")

    def _secret(self, namespace: str, name: str) -> Obj | None:
        try:
            resp = client.CoreV1Api(self._api).read_namespaced_secret(name, namespace, _preload_content=False)
            return dict(json.loads(resp.data))
        except (ApiException, ValueError):
            return None

    def _worker(self, namespace: str, pod: str) -> PodWorker | None:
        with self._lock:
            return next((w for w in self._workers.values() if w.key == f"{namespace}/{pod}"), None)

    def _exec_target(self, namespace: str, pod: str, container: str | None) -> ExecTarget:
        worker = self._worker(namespace, pod)
        if worker is None:
            raise LookupError(f"pod {namespace}/{pod} is not running on this kubelet")
        run = worker.container(container)
        if run is None:
            raise LookupError(f'container "{container}" not found in pod {namespace}/{pod}')
        target = run.target
        if not run.running or target is None:
            raise LookupError(f'container "{run.name}" in pod {namespace}/{pod} is not running')
        return ExecTarget(env=dict(target.env), cwd=target.cwd, host=worker.host,
                          mounts=mount_map(run.spec, worker.volumes))

    def _forward_host(self, namespace: str, pod: str) -> str:
        worker = self._worker(namespace, pod)
        if worker is None:
            raise LookupError(f"pod {namespace}/{pod} is not running on this kubelet")
        return worker.host

    def _resource_metrics(self) -> bytes:
        with self._lock:
            workers = list(self._workers.values())
        samples = [ContainerSample(w.pod["metadata"]["namespace"], w.pod["metadata"]["name"], r.name, proc.pid,
                                   r.started_at)
                   for w in workers for r in w.runs if (proc := r.proc) is not None and proc.poll() is None]
        return resource_metrics(samples)

    def _find_logs(self, namespace: str, pod: str, container: str | None, previous: bool) -> LogSource | None:
        worker = self._worker(namespace, pod)
        run = worker.container(container) if worker is not None else None
        if run is None:
            return None
        # the current (or, in back-off, the last) run's log; --previous: the one before
        restart = run.restart_count - 1 if previous else run.restart_count
        if restart < 0:
            return None
        return LogSource(path=run.log_path(restart), alive=lambda: run.running and run.restart_count == restart)
