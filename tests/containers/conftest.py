"""A Docker engine of gameday's own for the container providers' tests: dockerd from Debian's
docker.io on a socket and data root of its own, with the PostgreSQL image built here loaded.
The engine serves the tests of this folder only: DOCKER_HOST is set per test, never for the
rest of the suite (whose provider choice must not change)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from gameday.containers.engine import DockerEngine
from gameday.containers.postgres_image import ensure_image, installed

CAN_RUN = os.geteuid() == 0 and shutil.which("dockerd") is not None
WHY_NOT = "needs root and dockerd (as root, `./dev setup` installs Debian's docker.io)"


@pytest.fixture(scope="package")
def docker_engine() -> Iterator[DockerEngine]:
    if not CAN_RUN:
        pytest.skip(WHY_NOT)
    with DockerEngine() as engine:
        client = engine.client()
        try:
            ensure_image(client)
        finally:
            client.close()
        yield engine


@pytest.fixture
def docker_env(docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """DOCKER_HOST of the engine for this test; afterwards, no container of the test is left."""
    for key, value in docker_engine.environ().items():
        monkeypatch.setenv(key, value)
    yield {**os.environ, **docker_engine.environ()}
    client = docker_engine.client()
    try:
        left = [c.name for c in client.containers.list(all=True)]
        for container in client.containers.list(all=True):
            container.remove(force=True)
    finally:
        client.close()
    assert left == [], f"containers left behind: {left}"


@pytest.fixture(scope="package")
def pg_tag() -> str:
    return installed().tag
