"""LocalCluster: the embedded default cluster provider.

start() = ensure binaries -> control plane ready -> process kubelet (N nodes Ready) ->
service proxy.  The kubelet and proxy come from gameday.cluster.kubelet / .proxy when
those modules exist; without them the cluster is control-plane only (pods stay Pending).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gameday.cluster.access import REHEARSAL_LABEL, ClusterAccess, image_missing
from gameday.cluster.build import ensure_binaries
from gameday.cluster.controlplane import ControlPlane
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import Provider, temp_dir, wait_until

NODE_READY_TIMEOUT_S = 90.0


def node_names(count: int) -> list[str]:
    return [f"gameday-node-{index}" for index in range(1, count + 1)]


def ready_node_count(api_client: Any) -> int:
    from kubernetes import client

    count = 0
    for node in client.CoreV1Api(api_client).list_node(_request_timeout=10).items:
        conditions = {c.type: c.status for c in (node.status.conditions or [])}
        count += conditions.get("Ready") == "True"
    return count


class LocalCluster(ClusterAccess, Provider):
    """A real control plane plus (when part B is present) process kubelet and service proxy.

    Example::

        with LocalCluster(nodes=1) as cluster:
            kubectl --kubeconfig cluster.kubeconfig get nodes
    """

    name = "local-cluster"
    owns_cluster = True

    def __init__(self, nodes: int = 1, workdir: Path | None = None, version: str | None = None, *,
                 journal: Journal | None = None, catalog: Any = None,
                 progress: Callable[[str], None] | None = None, **_: Any) -> None:
        if nodes < 0:
            raise ConfigError(f"nodes={nodes} is negative", fix="use --nodes 0 or more")
        self.nodes = nodes
        self.workdir = Path(workdir) if workdir else None
        self.version = version
        self.journal = journal
        self.catalog = catalog
        self.progress = progress or (lambda message: None)
        self.control_plane: ControlPlane | None = None
        self.kubelet: Provider | None = None
        self.proxy: Provider | None = None
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._root: Path | None = None
        self._owns_root = False
        self._client: Any = None

    def _event(self, kind: str, message: str, **data: Any) -> None:
        self.progress(message)
        if self.journal is not None:
            self.journal.event(kind, message, **data)

    # -- start ----------------------------------------------------------------------------
    def start(self) -> LocalCluster:
        if self.control_plane is not None:
            return self
        try:
            return self._start()
        except BaseException:
            self.stop()  # a half-started cluster never leaks processes or dirs
            raise

    def _start(self) -> LocalCluster:
        started = time.monotonic()
        bin_dir = ensure_binaries(self.version, self.progress)
        if self.workdir is None:
            self._root, self._owns_root = temp_dir("cluster"), True
        else:
            self._root = self.workdir
            self._root.mkdir(parents=True, exist_ok=True)
        self.progress("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
        self.control_plane = ControlPlane(bin_dir, self._root / "control-plane", journal=self.journal)
        self.control_plane.start()
        self.timings["control_plane_s"] = self.control_plane.timings["total"]
        self._mark_rehearsal_target()
        self._start_nodes()
        self._start_proxy()
        self.timings["total_s"] = round(time.monotonic() - started, 2)
        self._event("cluster.ready", f"local cluster ready in {self.timings['total_s']:.1f}s",
                    nodes=self.nodes, **self.timings)
        return self

    def _mark_rehearsal_target(self) -> None:
        # A cluster gameday made itself is by definition a rehearsal target.
        from kubernetes import client

        client.CoreV1Api(self.api_client()).patch_namespace(
            "kube-system", {"metadata": {"labels": {REHEARSAL_LABEL: "true"}}})

    def _start_nodes(self) -> None:
        if self.nodes == 0:
            return
        try:
            from gameday.cluster.kubelet import ProcessKubelet  # part B; optional
        except ImportError as exc:
            self.skipped.append("kubelet")
            self._event("cluster.kubelet.skipped", f"process kubelet not available ({exc}); pods will stay Pending")
            return
        from gameday.images import ImageCatalog

        assert self._root is not None
        t0 = time.monotonic()
        self.progress(f"starting process kubelet for {self.nodes} node(s)")
        self.kubelet = ProcessKubelet(self.kubeconfig, node_names(self.nodes), self.catalog or ImageCatalog.load(),
                                      self._root / "kubelet")
        self.kubelet.start()
        wait_until(lambda: ready_node_count(self.api_client()) >= self.nodes, timeout=NODE_READY_TIMEOUT_S,
                   interval=0.5, what=f"{self.nodes} Ready node(s)", transient=(OSError, Exception))
        self.timings["nodes_ready_s"] = round(time.monotonic() - t0, 2)

    def _start_proxy(self) -> None:
        try:
            from gameday.cluster.proxy import ServiceProxy  # part B; optional
        except ImportError as exc:
            self.skipped.append("proxy")
            self._event("cluster.proxy.skipped", f"service proxy not available ({exc})")
            return
        self.proxy = ServiceProxy(self.kubeconfig)
        self.proxy.start()

    # -- use ------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        if self.control_plane is None:
            raise EnvironmentNotReady("the local cluster is not started", fix="call start() first")
        return self.control_plane.kubeconfig

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient for the admin user (one per cluster, reused)."""
        if self._client is None:
            from gameday.cluster.access import api_client

            self._client = api_client(self.kubeconfig)
        return self._client

    def check_image(self, image: str) -> None:
        if self.kubelet is not None:
            error = image_missing(self.kubelet.catalog, image)  # type: ignore[attr-defined]
            if error is not None:
                raise error

    def service_url(self, namespace: str, service: str, port: int) -> str:
        if self.proxy is None:
            return super().service_url(namespace, service, port)
        host, number = self.proxy.address(service, port, namespace)  # type: ignore[attr-defined]
        return f"http://{host}:{number}"

    def pids(self) -> dict[str, int]:
        return self.control_plane.pids() if self.control_plane else {}

    def endpoints(self) -> dict[str, Any]:
        result: dict[str, Any] = dict(self.control_plane.endpoints()) if self.control_plane else {}
        result["nodes"] = node_names(self.nodes) if self.kubelet is not None else []
        for name, part in (("kubelet", self.kubelet), ("proxy", self.proxy)):
            if part is not None:
                try:
                    result[name] = part.endpoints()
                except Exception as exc:  # noqa: BLE001 - endpoints are informative only
                    result[name] = {"error": str(exc)}
        return result

    # -- stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        # Part B first (they talk to the apiserver), then the control plane, then the files.
        self.close_access()
        for attribute in ("proxy", "kubelet"):
            part = getattr(self, attribute)
            if part is not None:
                try:
                    part.stop()
                finally:
                    setattr(self, attribute, None)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self._root is not None and self._owns_root:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
