"""A real Kubernetes control plane as local processes: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, all on 127.0.0.1 with free ports.

Each component is a row in COMPONENTS (flags + readiness probe), started in order and
waited for with a bounded, log-attaching readiness check.  Data, PKI, kubeconfigs and
logs live in one temp dir that stop() removes.  The flag sets follow envtest and kwok.

metrics-server (for `kubectl top`) is optional: it starts only when its binary was built
(`python -m gameday.cluster.build --metrics-server`), and is registered as the APIService
v1beta1.metrics.k8s.io behind an ExternalName Service, since no pod network exists here.

Example::

    with ControlPlane(build.bin_dir()) as plane:
        kubectl --kubeconfig plane.kubeconfig get --raw /readyz
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameday import settings
from gameday.cluster import certs, kubeconfig
from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import (
    Provider,
    free_port,
    spawn,
    stop_process,
    tail,
    temp_dir,
    wait_until,
)

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class Layout:
    """Where everything of one control plane lives, and the ports it listens on."""

    root: Path
    bin_dir: Path
    pki: certs.ClusterPKI
    ports: dict[str, int]
    admin_kubeconfig: Path
    component_kubeconfigs: dict[str, Path] = field(default_factory=dict)

    def log(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"


def etcd_flags(lay: Layout) -> list[str]:
    client, peer = f"http://127.0.0.1:{lay.ports['etcd']}", f"http://127.0.0.1:{lay.ports['etcd-peer']}"
    return [
        "--name=gameday", f"--data-dir={lay.root / 'etcd'}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=gameday={peer}",
        # Rehearsal data is disposable: skipping fsync keeps a shared 2-core machine responsive.
        "--unsafe-no-fsync=true", "--log-level=warn",
    ]


def apiserver_flags(lay: Layout) -> list[str]:
    pki = lay.pki
    return [
        f"--etcd-servers=http://127.0.0.1:{lay.ports['etcd']}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={lay.ports['kube-apiserver']}", f"--cert-dir={lay.root / 'apiserver-certs'}",
        f"--tls-cert-file={pki.apiserver.cert}", f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        f"--service-cluster-ip-range={certs.SERVICE_CIDR}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        # The apiserver dials kubelets (logs, exec) at the node's InternalIP with this client
        # cert; no --kubelet-certificate-authority, so it does not verify the kubelet's cert.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--kubelet-client-certificate={pki.kubelet_client.cert}",
        f"--kubelet-client-key={pki.kubelet_client.key}",
        # Aggregation-layer request-header auth (kubeadm's set); without it the controller-manager
        # and scheduler log errors about a missing requestheader CA bundle.
        f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
        "--profiling=false",
    ]


def _delegated(lay: Layout, component: str) -> list[str]:
    config = lay.component_kubeconfigs[component]
    return [
        f"--kubeconfig={config}", f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
        "--bind-address=127.0.0.1", f"--secure-port={lay.ports[component]}",
        f"--cert-dir={lay.root / (component + '-certs')}", "--leader-elect=false", "--profiling=false",
    ]


def controller_manager_flags(lay: Layout) -> list[str]:
    pki = lay.pki
    return [
        *_delegated(lay, "kube-controller-manager"),
        "--controllers=*",  # the default set: deployment, replicaset, endpointslice, nodelifecycle, serviceaccount...
        "--use-service-account-credentials=true",
        # Its client's default rate limit (20 QPS, burst 30) paces its start: each controller fetches its own
        # service-account credentials, so ~40 controllers queued behind the limiter took ~5 s on loopback.
        "--kube-api-qps=500", "--kube-api-burst=1000",
        # The serviceaccount-token controller signs tokens and publishes the root CA to every namespace.
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--cluster-signing-cert-file={pki.ca.cert}", f"--cluster-signing-key-file={pki.ca.key}",
    ]


def scheduler_flags(lay: Layout) -> list[str]:
    return _delegated(lay, "kube-scheduler")


def metrics_server_flags(lay: Layout) -> list[str]:
    config = lay.admin_kubeconfig
    return [
        f"--kubeconfig={config}", f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
        "--bind-address=127.0.0.1", f"--secure-port={lay.ports['metrics-server']}",
        f"--cert-dir={lay.root / 'metrics-server-certs'}",
        # The process kubelet serves a self-signed cert on the node's InternalIP and status port.
        "--kubelet-insecure-tls", "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
        "--metric-resolution=15s", "--kubelet-request-timeout=5s",
    ]


def metrics_api_objects(port: int) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) that put metrics-server behind the aggregator on 127.0.0.1:port."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics-server", "namespace": "kube-system"},
               "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"port": port}]}}
    api_service = {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                 "groupPriorityMinimum": 100, "versionPriority": 100,
                 "service": {"name": "metrics-server", "namespace": "kube-system", "port": port}}}
    return [("/api/v1/namespaces/kube-system/services", service),
            ("/apis/apiregistration.k8s.io/v1/apiservices", api_service)]


class Probe:
    """HTTPS/HTTP GET probes against one control plane."""

    def __init__(self, lay: Layout) -> None:
        self.lay = lay
        self.admin = ssl.create_default_context(cafile=str(lay.pki.ca.cert))
        self.admin.load_cert_chain(str(lay.pki.admin.cert), str(lay.pki.admin.key))
        # Controller-manager and scheduler serve self-signed certs on their health ports.
        self.insecure = ssl._create_unverified_context()  # noqa: S323 - loopback health probe only

    def get(self, url: str, context: ssl.SSLContext | None = None, timeout: float = 3.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, context=context, timeout=timeout) as response:  # noqa: S310
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def api(self, path: str) -> tuple[int, str]:
        return self.get(self.lay.apiserver_url + path, self.admin)

    def create(self, path: str, body: dict[str, Any]) -> int:
        request = urllib.request.Request(self.lay.apiserver_url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.admin, timeout=10) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def etcd(self) -> bool:
        status, body = self.get(f"http://127.0.0.1:{self.lay.ports['etcd']}/health")
        return status == 200 and json.loads(body).get("health") == "true"

    def apiserver(self) -> bool:
        return self.api("/readyz")[0] == 200

    def health(self, component: str) -> bool:
        return self.get(f"https://127.0.0.1:{self.lay.ports[component]}/healthz", self.insecure)[0] == 200

    def default_service_account(self) -> bool:
        # Pods are refused until the serviceaccount controller has made "default" in their namespace.
        return self.api("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200


@dataclass(frozen=True)
class Component:
    name: str
    binary: str
    flags: Callable[[Layout], list[str]]
    ready: Callable[[Probe], bool]
    timeout: float
    optional: bool = False  # started only when its binary exists


COMPONENTS: list[Component] = [
    Component("etcd", "etcd", etcd_flags, Probe.etcd, 30.0),
    Component("kube-apiserver", "kube-apiserver", apiserver_flags, Probe.apiserver, 120.0),
    Component("kube-controller-manager", "kube-controller-manager", controller_manager_flags,
              lambda probe: probe.health("kube-controller-manager"), 60.0),
    Component("kube-scheduler", "kube-scheduler", scheduler_flags, lambda probe: probe.health("kube-scheduler"), 60.0),
    Component("metrics-server", "metrics-server", metrics_server_flags,
              lambda probe: probe.get(f"https://127.0.0.1:{probe.lay.ports['metrics-server']}/livez",
                                      probe.insecure)[0] == 200, 60.0, optional=True),
]


class ControlPlane(Provider):
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on 127.0.0.1."""

    name = "control-plane"

    def __init__(self, bin_dir: Path, workdir: Path | None = None, *, journal: Journal | None = None,
                 timeout_scale: float = 1.0) -> None:
        self.bin_dir = Path(bin_dir)
        self._workdir = Path(workdir) if workdir else None
        self.journal = journal
        self.timeout_scale = timeout_scale
        self.layout: Layout | None = None
        self.processes: dict[str, subprocess.Popen[Any]] = {}
        self.timings: dict[str, float] = {}
        self._owns_root = False

    # -- start ----------------------------------------------------------------------------
    def _prepare(self) -> Layout:
        if self._workdir is None:
            root, self._owns_root = temp_dir("k8s"), True
        else:
            root = self._workdir
            root.mkdir(parents=True, exist_ok=True)
        missing = [c.binary for c in COMPONENTS if not c.optional and not (self.bin_dir / c.binary).is_file()]
        if missing:
            raise EnvironmentNotReady(f"control-plane binaries missing in {self.bin_dir}: {', '.join(missing)}",
                                      fix="run `gameday cluster build` (or python -m gameday.cluster.build)")
        pki = certs.generate(root / "pki")
        ports = {name: free_port() for name in ("etcd", "etcd-peer", "kube-apiserver",
                                                  "kube-controller-manager", "kube-scheduler", "metrics-server")}
        lay = Layout(root=root, bin_dir=self.bin_dir, pki=pki, ports=ports, admin_kubeconfig=root / "admin.kubeconfig")
        server = lay.apiserver_url
        kubeconfig.write(lay.admin_kubeconfig, server, pki.ca.cert, pki.admin)
        for component, pair in (("kube-controller-manager", pki.controller_manager), ("kube-scheduler", pki.scheduler)):
            lay.component_kubeconfigs[component] = kubeconfig.write(
                root / f"{component}.kubeconfig", server, pki.ca.cert, pair, user=component)
        return lay

    def _spawn(self, component: Component, lay: Layout) -> subprocess.Popen[Any]:
        argv = [str(self.bin_dir / component.binary), *component.flags(lay)]
        return spawn(argv, log=lay.log(component.name), grace=10.0, die_with_harness=True,
                     part=component.name, shared=True)

    def _wait_ready(self, component: Component, probe: Probe, proc: subprocess.Popen[Any], log: Path) -> None:
        def check() -> bool:
            if proc.poll() is not None:
                last = " | ".join(tail(log, 5).splitlines())
                raise EnvironmentNotReady(f"{component.name} exited with code {proc.returncode}: {last}",
                                          fix=f"full log: {log}")
            return component.ready(probe)

        wait_until(check, timeout=component.timeout * self.timeout_scale, interval=0.2,
                   what=component.name, transient=(OSError, ValueError), logs=lambda: tail(log))

    def start(self) -> ControlPlane:
        if self.processes:
            return self
        started = time.monotonic()
        lay = self.layout = self._prepare()
        probe = Probe(lay)
        for component in COMPONENTS:
            if component.optional and not (self.bin_dir / component.binary).is_file() \
                    or component.name == "metrics-server" and settings.get("metrics-server") != "1":
                continue
            t0 = time.monotonic()
            self.processes[component.name] = proc = self._spawn(component, lay)
            self._wait_ready(component, probe, proc, lay.log(component.name))
            self.timings[component.name] = round(time.monotonic() - t0, 2)
            if component.name == "kube-apiserver":
                self.timings["api_ready"] = round(time.monotonic() - started, 2)  # /readyz answers 200
        if "metrics-server" in self.processes:
            for path, body in metrics_api_objects(lay.ports["metrics-server"]):
                code = probe.create(path, body)
                if code not in (201, 409):
                    raise EnvironmentNotReady(f"registering metrics-server: POST {path} answered {code}",
                                              fix=f"see {lay.log('kube-apiserver')}")
        wait_until(probe.default_service_account, timeout=60 * self.timeout_scale, interval=0.2,
                   what="ServiceAccount default/default (serviceaccount controller)",
                   logs=lambda: tail(lay.log("kube-controller-manager")))
        self.timings["total"] = round(time.monotonic() - started, 2)
        if self.journal is not None:
            self.journal.event("cluster.control-plane.ready", f"control plane ready at {lay.apiserver_url}",
                               seconds=self.timings["total"], ports=lay.ports)
        return self

    # -- use ------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        if self.layout is None:
            raise EnvironmentNotReady("the control plane is not started", fix="call start() first")
        return self.layout.admin_kubeconfig

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}

    def endpoints(self) -> dict[str, Any]:
        if self.layout is None:
            return {}
        lay = self.layout
        return {
            "apiserver": lay.apiserver_url,
            "etcd": f"http://127.0.0.1:{lay.ports['etcd']}",
            "kubeconfig": str(lay.admin_kubeconfig),
            "ports": dict(lay.ports),
            "pids": self.pids(),
            "workdir": str(lay.root),
            "logs": {c.name: str(lay.log(c.name)) for c in COMPONENTS},
            "ca": {"cert": str(lay.pki.ca.cert), "key": str(lay.pki.ca.key)},
        }

    # -- stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        # Reverse order: clients of the apiserver first, etcd last.
        for component in reversed(COMPONENTS):
            proc = self.processes.pop(component.name, None)
            if proc is not None:
                stop_process(proc, grace=10.0)
        if self.layout is not None and self._owns_root:
            shutil.rmtree(self.layout.root, ignore_errors=True)
