"""What a rehearsal needs of any cluster provider: namespaces, images, a service's address.

Every cluster provider (local, kubeconfig, k3s) offers the same three calls, so the
rehearsal never asks which one it has:

- ``prepare_namespace(ns)``: a cluster gameday made is a rehearsal target, so it creates
  and labels the namespace; on a cluster it did not make, the namespace (or kube-system)
  must carry ``gameday.io/rehearsal=true`` (checked by the provider).
- ``check_image(image)``: on the embedded cluster an image missing from the catalog is
  bad input at once (exit 2), not a 60 s wait for a progress deadline.
- ``service_url(ns, name, port)``: a loopback URL that reaches the Service.  The embedded
  cluster's proxy serves every Service on 127.0.0.1 and publishes the map as ConfigMap
  kube-system/gameday-service-proxy; any other cluster is reached through a
  ``kubectl port-forward`` the harness opens (and closes).

    url = cluster.service_url("shop", "checkout-api", 80)   # http://127.0.0.1:41234
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.lifecycle import cancel_cleanup, on_cleanup, stop_process, temp_dir, wait_until

REHEARSAL_LABEL = "gameday.io/rehearsal"
PUBLISHED_CONFIGMAP = "gameday-service-proxy"
PORT_FORWARD_TIMEOUT_S = 20.0
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


_client_files: Path | None = None


def api_client(kubeconfig: Path | str, context: str | None = None, *,
               fix: str = "check the kubeconfig file (and --context)") -> Any:
    """A kubernetes ApiClient for ``kubeconfig``, or a one-line ConfigError naming the file.

    The client writes the kubeconfig's certificates to temp files; they go in a folder of
    ours, removed on exit and swept by the next run if this one was killed."""
    global _client_files
    from kubernetes import client, config

    if _client_files is None or not _client_files.is_dir():
        _client_files = temp_dir("kubeclient")
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=configuration,
                                persist_config=False, temp_file_path=str(_client_files))
    except (config.ConfigException, OSError, ValueError) as exc:
        raise ConfigError(f"kubeconfig {kubeconfig} is not usable: {str(exc).strip().splitlines()[0]}",
                          fix=fix) from None
    return client.ApiClient(configuration=configuration)


def server_version(api: Any) -> str | None:
    """The API server's version (e.g. v1.34.4), or None when it does not say."""
    from kubernetes import client

    try:
        return str(client.VersionApi(api).get_code(_request_timeout=10).git_version)
    except Exception:  # noqa: BLE001 - a fact for the record, never a reason to stop
        return None


def published_services(api_client: Any) -> dict[str, str] | None:
    """The address map a gameday service proxy published on this cluster, or None."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        cm = client.CoreV1Api(api_client).read_namespaced_config_map(PUBLISHED_CONFIGMAP, "kube-system",
                                                                     _request_timeout=10)
    except ApiException as exc:
        if exc.status in (403, 404):
            return None
        raise
    try:
        return dict(json.loads((cm.data or {}).get("services.json", "{}")))
    except ValueError:
        return None


class PortForward:
    """``kubectl port-forward service/NAME :PORT`` on 127.0.0.1, for as long as the provider lives.

    kubectl forwards to one pod of the Service, chosen when it starts: when that pod goes
    away (a rollout replaces it) kubectl stops, and the next ``url()`` opens a new one.
    """

    def __init__(self, kubeconfig: Path, namespace: str, service: str, port: int, log: Path) -> None:
        self.argv = [shutil.which("kubectl") or "kubectl", "--kubeconfig", str(kubeconfig), "-n", namespace,
                     "port-forward", "--address", "127.0.0.1", f"service/{service}", f":{port}"]
        self.what = f"port-forward to service {namespace}/{service}:{port}"
        self.log = log
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None
        self._handle = 0
        self._lock = threading.Lock()

    def url(self) -> str:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            return f"http://127.0.0.1:{self._port}"

    def _start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._proc = proc
        self._handle = on_cleanup(lambda: stop_process(proc, grace=2))
        lines: list[str] = []

        def forwarding() -> int | None:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                raise EnvironmentNotReady(f"{self.what} failed: {' | '.join(lines[-3:]) or 'kubectl exited'}",
                                          fix="check that the Service has ready pods and kubectl can reach the cluster")
            lines.append(line.strip())
            match = _FORWARDING.search(line)
            return int(match.group(1)) if match else None

        self._port = wait_until(forwarding, timeout=PORT_FORWARD_TIMEOUT_S, interval=0.05, what=self.what)
        # keep draining kubectl's output so it never blocks on a full pipe
        threading.Thread(target=self._drain, args=(proc,), daemon=True, name="port-forward-log").start()

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with self.log.open("a") as out:
            for line in proc.stdout:
                out.write(line)

    def stop(self) -> None:
        with self._lock:
            if self._proc is not None:
                cancel_cleanup(self._handle)
                stop_process(self._proc, grace=2)
                self._proc = None


class ClusterAccess:
    """Mixin for cluster providers: see the module docstring."""

    owns_cluster = False  # True: gameday made this cluster, every namespace is a rehearsal target
    _forwards: dict[str, PortForward]

    @property
    def kubeconfig(self) -> Path:
        raise NotImplementedError

    def api_client(self) -> Any:
        raise NotImplementedError

    def require_rehearsal_target(self, namespace: str | None = None) -> None:
        """Raise unless the cluster or ``namespace`` may be acted on (providers of others' clusters)."""

    def prepare_namespace(self, namespace: str) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(self.api_client())
        if not self.owns_cluster:
            self.require_rehearsal_target(namespace)
        try:
            core.read_namespace(namespace, _request_timeout=10)
            exists = True
        except ApiException as exc:
            if exc.status != 404:
                raise EnvironmentNotReady(f"cannot read namespace {namespace}: {exc.reason}",
                                          fix="check the kubeconfig's credentials") from None
            exists = False
        body = {"metadata": {"name": namespace, "labels": {REHEARSAL_LABEL: "true"}}}
        if not exists:
            core.create_namespace(body, _request_timeout=10)
            if not self.owns_cluster:  # ours to remove again when the run ends
                self.__dict__.setdefault("_created", []).append(namespace)
        elif self.owns_cluster:
            core.patch_namespace(namespace, body, _request_timeout=10)

    def check_image(self, image: str) -> None:
        """Clusters that pull real images cannot tell before the pull; the embedded one can."""

    def service_url(self, namespace: str, service: str, port: int) -> str:
        published = published_services(self.api_client())
        if published is not None:
            key = f"{namespace}/{service}:{port}"

            def listed() -> str | None:
                found = published_services(self.api_client()) or {}
                return found.get(key)

            address = wait_until(listed, timeout=10, interval=0.2, what=f"published address of service {key}")
            return f"http://{address}"
        forwards = self.__dict__.setdefault("_forwards", {})
        key = f"{namespace}/{service}:{port}"
        if key not in forwards:
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"gameday-port-forward-{os.getpid()}-{len(forwards)}.log"
            forwards[key] = PortForward(self.kubeconfig, namespace, service, port, log)
        return forwards[key].url()

    def close_access(self) -> None:
        """Close the port-forwards; on a cluster gameday did not make, delete the namespaces it made."""
        for forward in self.__dict__.get("_forwards", {}).values():
            forward.stop()
            forward.log.unlink(missing_ok=True)
        self.__dict__["_forwards"] = {}
        created = self.__dict__.pop("_created", [])
        if created:
            from kubernetes import client

            core = client.CoreV1Api(self.api_client())
            for namespace in created:
                with contextlib.suppress(Exception):  # best effort: the cluster is not ours
                    core.delete_namespace(namespace, _request_timeout=10)


def image_missing(catalog: Any, image: str) -> ConfigError | None:
    """A ConfigError naming ``image`` and the fix when ``catalog`` cannot run it."""
    from gameday.images import ImageNotFound

    try:
        catalog.resolve(image, pruned_too=True)  # a pruned image is known: pulling it fails in the cluster
    except ImageNotFound as exc:
        return ConfigError(f"image {image} cannot run on the embedded cluster: {exc}",
                           fix="add the repository and tag under images: in gameday.yaml (or --images FILE)")
    return None
