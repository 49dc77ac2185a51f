"""The lifecycle Docker-backed providers share: the daemon check, a testcontainers
container started and registered for cleanup, and one clear line when it fails."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from gameday.errors import EnvironmentNotReady
from gameday.lifecycle import Provider, cancel_cleanup, on_cleanup, pid_alive

OWNER_LABEL = "org.gameday.owner"  # "<host>:<pid>" of the gameday process that started the container


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def has_image(client: Any, tag: str) -> bool:
    """Does the engine ``client`` talks to hold the image ``tag``?"""
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def sweep_orphans(client: Any) -> list[str]:
    """Remove the containers a gameday process on this host started and left behind when it was
    killed (its pid is gone): what testcontainers' reaper does, without an image to pull."""
    removed = []
    here = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        host, _, pid = str(container.labels.get(OWNER_LABEL, "")).rpartition(":")
        if host == here and pid.isdigit() and not pid_alive(int(pid)):
            with suppress(Exception):  # gone meanwhile
                container.remove(force=True)
                removed.append(container.name)
    return removed


class ContainerProvider(Provider):
    """Subclasses call :meth:`_start_container` from start(); stop() is shared."""

    image: str
    _container: Any = None
    _cleanup: int | None = None

    def _start_container(self, make: Callable[[Any], Any], *, what: str, local_setting: str, fix: str) -> Any:
        """``make(client)`` returns an unstarted testcontainers container; it is labelled with its owner,
        started and registered for cleanup.  Containers a killed gameday left are removed first."""
        import docker
        from testcontainers.core.config import testcontainers_config

        from gameday.providers import docker_status

        status = docker_status()
        if not status:
            raise EnvironmentNotReady(f"{what}: {status.detail}", fix=f"start Docker, or set {local_setting}=local")
        # testcontainers' reaper (Ryuk) is an image to pull, which an engine without a registry cannot:
        # gameday reaps its own containers instead (stop(), cleanup on signals, the owner label below)
        testcontainers_config.ryuk_disabled = True
        self._cleanup = on_cleanup(self.stop)
        try:
            client = docker.from_env(timeout=60)
            try:
                sweep_orphans(client)
                self._container = make(client)
            finally:
                client.close()
            kwargs = dict(self._container._kwargs)  # with_kwargs() replaces what make() gave (network_mode...)
            self._container.with_kwargs(**kwargs, labels={**kwargs.get("labels", {}), OWNER_LABEL: owner()})
            self._container.start()
        except EnvironmentNotReady:
            raise
        except Exception as exc:  # noqa: BLE001 - docker SDK and testcontainers raise many types
            raise EnvironmentNotReady(f"{what} ({self.image}) did not start: {first_line(exc)}", fix=fix) from None
        return self._container

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with suppress(Exception):  # already gone
                container.stop()
        if self._cleanup is not None:
            cancel_cleanup(self._cleanup)
            self._cleanup = None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
