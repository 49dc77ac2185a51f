"""Fixtures for the local-cluster tests: one LocalCluster shared by the whole session.

They need the built binaries (`python -m gameday.cluster.build`, which .ci/run does first);
without them the cluster tests are skipped with that instruction.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.cluster import build
from gameday.cluster.local import LocalCluster


def require_binaries() -> None:
    if not build.is_built():
        pytest.skip(f"Kubernetes binaries not built in {build.bin_dir()}: run `python -m gameday.cluster.build`")


@pytest.fixture(scope="session")
def built_binaries() -> None:
    """Skips the test unless the control-plane binaries are in the cache."""
    require_binaries()


@pytest.fixture(scope="session")
def local_cluster(built_binaries: None) -> Iterator[LocalCluster]:
    """A running LocalCluster (control plane, plus part B's kubelet and proxy when present)."""
    nodes = int(os.environ.get("GAMEDAY_TEST_NODES", "1"))
    with LocalCluster(nodes=nodes) as cluster:
        yield cluster


TEST_IMAGES = Path(__file__).with_name("images-test.yaml")


@pytest.fixture(scope="module")
def cluster(local_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The session cluster with tests/cluster/images-test.yaml in its catalog and a 1 s (at most 4 s)
    restart back-off, for the kubelet's own tests."""
    from gameday.cluster.kubelet import ProcessKubelet
    from gameday.cluster.kubelet_containers import Backoff

    kubelet = local_cluster.kubelet
    assert isinstance(kubelet, ProcessKubelet), "the local cluster runs without the process kubelet"
    kubelet.catalog.add_file(TEST_IMAGES)
    previous, kubelet.backoff = kubelet.backoff, Backoff(base=1.0, maximum=4.0)
    yield local_cluster
    kubelet.backoff = previous


@pytest.fixture
def ns(local_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of its own for one test, deleted after it."""
    from kubernetes import client

    core = client.CoreV1Api(local_cluster.api_client())
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:8].replace("_", "-")
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, grace_period_seconds=0)
