"""Fixtures for the local-cluster tests: one LocalCluster shared by the whole session.

They need the built binaries (`python -m gameday.cluster.build`, which .ci/run does first);
without them the cluster tests are skipped with that instruction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
