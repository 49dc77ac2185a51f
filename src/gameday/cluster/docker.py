"""A k3s cluster in a Docker container (testcontainers' k3s module), when a daemon answers.

Chosen by :mod:`gameday.providers` when Docker answers (or GAMEDAY_CLUSTER=k3s).  It
exposes what the other cluster providers expose: ``.kubeconfig`` (a file that works
for kubectl and the Python client) and ``api_client()``.  Unlike the local embedded
cluster, pods here run the images for real, so the image catalog is not used: the
demo image must be loadable into k3s (``k3s ctr images import``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gameday.cluster.access import ClusterAccess
from gameday.containers import ContainerProvider, has_image
from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import temp_dir

DEFAULT_IMAGE = "rancher/k3s:v1.31.4-k3s1"


class K3sCluster(ClusterAccess, ContainerProvider):
    """Pods here run real images, which must be in k3s already: with no registry reachable
    (as on our own machines) nothing can be pulled, so this provider needs images that a
    registry or ``k3s ctr images import`` provides; reached by port-forward."""

    name = "k3s-cluster"
    owns_cluster = True

    def __init__(self, image: str = DEFAULT_IMAGE, *, journal: Journal | None = None, **_: Any) -> None:
        self.image = image
        self.journal = journal
        self._kubeconfig: Path | None = None
        self._client: Any = None

    def start(self) -> K3sCluster:
        def make(client: Any) -> Any:
            from docker.errors import DockerException
            from testcontainers.community.k3s import K3SContainer

            if not has_image(client, self.image):  # k3s itself is an image only a registry (or docker load) gives
                try:
                    client.images.pull(self.image)
                except DockerException:
                    raise EnvironmentNotReady(
                        f"k3s cluster: the image {self.image} is not in the Docker engine and cannot be pulled "
                        "(no registry answers); k3s (like kind) runs from an image a registry provides, and it "
                        "would need the service's images loaded into it too",
                        fix="`docker load` the k3s image where there is no registry, or set GAMEDAY_CLUSTER=local "
                            "for the embedded cluster") from None
            return K3SContainer(self.image)

        container = self._start_container(make, what="k3s cluster", local_setting="GAMEDAY_CLUSTER",
                                          fix="k3s needs a privileged container")
        self._kubeconfig = temp_dir("k3s") / "kubeconfig"
        self._kubeconfig.write_text(container.config_yaml())
        self._kubeconfig.chmod(0o600)
        if self.journal is not None:
            self.journal.event("cluster.start", f"k3s {self.image} in a container")
        return self

    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig is None:
            raise EnvironmentNotReady("k3s cluster is not started")
        return self._kubeconfig

    def api_client(self) -> Any:
        if self._client is None:
            from gameday.cluster.access import api_client

            self._client = api_client(self.kubeconfig)
        return self._client

    def endpoints(self) -> dict[str, Any]:
        return {"kubeconfig": str(self.kubeconfig)}

    def stop(self) -> None:
        self.close_access()
        super().stop()
