"""Kubeconfig files, and the provider for an existing cluster reached through one.

write() makes kubeconfigs that work for kubectl, the Python kubernetes client and the Go
components; KubeconfigCluster acts on any cluster, but only one marked for rehearsal.

Certificates are embedded as base64 data (not file paths) so a kubeconfig stays valid when
copied elsewhere, and the Python client (which writes embedded data to temp files itself)
reads it without any special handling.
"""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
import yaml

from gameday import settings
from gameday.cluster.access import REHEARSAL_LABEL, ClusterAccess
from gameday.cluster.certs import KeyPair
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.lifecycle import Provider


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def build(server: str, ca_cert: Path, client: KeyPair, *, name: str = "gameday-local",
          user: str = "admin", namespace: str | None = None) -> dict[str, Any]:
    """The kubeconfig document for one cluster, one user and one context named ``name``."""
    context: dict[str, Any] = {"cluster": name, "user": f"{name}-{user}"}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)}}],
        "users": [{
            "name": f"{name}-{user}",
            "user": {"client-certificate-data": _b64(client.cert), "client-key-data": _b64(client.key)},
        }],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
    }


def write(path: Path, server: str, ca_cert: Path, client: KeyPair, **options: Any) -> Path:
    """Write a kubeconfig (mode 0600: it holds a private key) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(build(server, ca_cert, client, **options), sort_keys=False))
    path.chmod(0o600)
    return path


def server_of(path: Path, context: str | None = None) -> str:
    """The API server URL of ``context`` (default: the current context) in a kubeconfig."""
    document = yaml.safe_load(path.read_text()) or {}
    context_name = context or document.get("current-context")
    contexts = {c["name"]: c["context"] for c in document.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in document.get("clusters") or []}
    cluster_name = contexts.get(context_name, {}).get("cluster")
    return str(clusters.get(cluster_name, {}).get("server", ""))


def default_kubeconfig() -> Path:
    """GAMEDAY_KUBECONFIG, else the first file of $KUBECONFIG, else ~/.kube/config."""
    chosen = settings.get("kubeconfig") or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return Path(chosen or "~/.kube/config").expanduser()


class KubeconfigCluster(ClusterAccess, Provider):
    """An existing cluster reached through a kubeconfig; refuses clusters not marked for rehearsal.

    A cluster is a rehearsal target when its kube-system namespace, or the namespace gameday
    acts in, carries the label or annotation ``gameday.io/rehearsal=true``; the setting
    ``allow-non-rehearsal=1`` (GAMEDAY_ALLOW_NON_REHEARSAL) overrides the check.
    """

    name = "kubeconfig-cluster"
    MARKER = REHEARSAL_LABEL

    def __init__(self, path: Path | str | None = None, context: str | None = None, *, namespace: str | None = None,
                 **_: Any) -> None:
        self.path = Path(path).expanduser() if path else default_kubeconfig()
        self.context = context or settings.get("kube-context") or None
        self.namespace = namespace
        self._client: Any = None

    def start(self) -> KubeconfigCluster:
        self.preflight()
        self.require_rehearsal_target(self.namespace)
        return self

    def preflight(self) -> None:
        """Before a run starts anything: the kubeconfig exists, names a server, and that server
        accepts a connection (3 s).  Whether it is a rehearsal target is asked of the API itself."""
        if not self.path.is_file():
            raise ConfigError(f"kubeconfig {self.path} does not exist",
                              fix="set GAMEDAY_KUBECONFIG (or KUBECONFIG) to the rehearsal cluster's kubeconfig")
        try:
            server = server_of(self.path, self.context)
        except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError) as exc:
            raise ConfigError(f"kubeconfig {self.path} is not a kubeconfig ({type(exc).__name__})",
                              fix="point GAMEDAY_KUBECONFIG at a kubeconfig file (kubectl config view --raw)") from None
        where = urlsplit(server)
        if not server or where.hostname is None:
            raise ConfigError(f"kubeconfig {self.path} names no API server for context {self.context or '(current)'}",
                              fix="check its current-context, or set GAMEDAY_KUBE_CONTEXT")
        try:
            socket.create_connection((where.hostname, where.port or 443), timeout=3).close()
        except OSError as exc:
            short = exc.strerror or type(exc).__name__
            raise EnvironmentNotReady(f"cluster {server} (kubeconfig {self.path}) is unreachable: {short}",
                                      fix="check the kubeconfig's server, that the cluster runs, and credentials") from None

    def api_client(self) -> Any:
        if self._client is None:
            from gameday.cluster.access import api_client

            self._client = api_client(self.path, self.context, fix="check the file and --context")
        return self._client

    @property
    def kubeconfig(self) -> Path:
        return self.path

    def _marked(self, namespace: str) -> bool:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            meta = client.CoreV1Api(self.api_client()).read_namespace(namespace, _request_timeout=10).metadata
        except ApiException as exc:
            if exc.status in (403, 404):
                return False
            raise
        marks = {**(meta.labels or {}), **(meta.annotations or {})}
        return marks.get(self.MARKER) == "true"

    def require_rehearsal_target(self, namespace: str | None = None) -> None:
        """Raise unless the cluster (or ``namespace``) is marked as a rehearsal target."""
        if settings.get("allow-non-rehearsal") == "1":
            return
        try:
            marked = self._marked("kube-system") or (namespace is not None and self._marked(namespace))
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            reason = getattr(exc, "reason", None) or exc
            short = str(reason).rsplit("] ", 1)[-1].rstrip("')\"")  # "[Errno 111] Connection refused" -> the words
            raise EnvironmentNotReady(f"cluster {server_of(self.path, self.context)} (kubeconfig {self.path}) is "
                                      f"unreachable: {short}",
                                      fix="check the kubeconfig's server, that the cluster runs, and credentials") from None
        if not marked:
            where = f"namespace {namespace} or kube-system" if namespace else "namespace kube-system"
            raise ConfigError(
                f"cluster {server_of(self.path, self.context)} is not marked as a rehearsal target",
                fix=f"label {where} with {self.MARKER}=true (kubectl label namespace kube-system "
                    f"{self.MARKER}=true) or set GAMEDAY_ALLOW_NON_REHEARSAL=1",
            )

    def endpoints(self) -> dict[str, Any]:
        return {"kubeconfig": str(self.path), "context": self.context,
                "apiserver": server_of(self.path, self.context)}

    def stop(self) -> None:
        # Never touches the cluster itself: it is not ours to tear down.
        self.close_access()
        if self._client is not None:
            self._client.close()
            self._client = None
