"""A k3s cluster in a Docker container (testcontainers' k3s module), when a daemon answers.

Chosen by :mod:`gameday.providers` when Docker answers (or GAMEDAY_CLUSTER=k3s).  It
exposes what the other cluster providers expose: ``.kubeconfig`` (a file that works
for kubectl and the Python client) and ``api_client()``.  Unlike the local embedded
cluster, pods here run the images for real, so the image catalog is not used: the
demo image must be loadable into k3s (``k3s ctr images import``).
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import Provider, cancel_cleanup, on_cleanup, temp_dir

DEFAULT_IMAGE = "rancher/k3s:v1.31.4-k3s1"


class K3sCluster(Provider):
    name = "k3s-cluster"

    def __init__(self, image: str = DEFAULT_IMAGE, *, journal: Journal | None = None, **_: Any) -> None:
        self.image = image
        self.journal = journal
        self._container: Any = None
        self._kubeconfig: Path | None = None
        self._client: Any = None
        self._cleanup: int | None = None

    def start(self) -> K3sCluster:
        from gameday.providers import docker_status

        status = docker_status()
        if not status:
            raise EnvironmentNotReady(f"k3s cluster: {status.detail}", fix="start Docker, or set GAMEDAY_CLUSTER=local")
        from testcontainers.community.k3s import K3SContainer

        self._cleanup = on_cleanup(self.stop)
        try:
            container = K3SContainer(self.image)
            self._container = container
            container.start()
        except Exception as exc:  # noqa: BLE001 - docker SDK and testcontainers raise many types
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise EnvironmentNotReady(f"k3s ({self.image}) did not start: {text}", fix="k3s needs a privileged container") from None
        self._kubeconfig = temp_dir("k3s") / "kubeconfig"
        self._kubeconfig.write_text(container.config_yaml())
        self._kubeconfig.chmod(0o600)
        if self.journal is not None:
            self.journal.event("cluster.start", f"k3s {self.image} in a container")
        return self

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with suppress(Exception):  # already gone
                container.stop()
        if self._cleanup is not None:
            cancel_cleanup(self._cleanup)
            self._cleanup = None

    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig is None:
            raise EnvironmentNotReady("k3s cluster is not started")
        return self._kubeconfig

    def api_client(self) -> Any:
        if self._client is None:
            from kubernetes import config

            self._client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._client

    def endpoints(self) -> dict[str, Any]:
        return {"kubeconfig": str(self.kubeconfig)}
