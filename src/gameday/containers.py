"""The lifecycle Docker-backed providers share: the daemon check, a testcontainers
container started and registered for cleanup, and one clear line when it fails."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

from gameday.errors import EnvironmentNotReady
from gameday.lifecycle import Provider, cancel_cleanup, on_cleanup


class ContainerProvider(Provider):
    """Subclasses call :meth:`_start_container` from start(); stop() is shared."""

    image: str
    _container: Any = None
    _cleanup: int | None = None

    def _start_container(self, make: Callable[[], Any], *, what: str, local_setting: str, fix: str) -> Any:
        from gameday.providers import docker_status

        status = docker_status()
        if not status:
            raise EnvironmentNotReady(f"{what}: {status.detail}", fix=f"start Docker, or set {local_setting}=local")
        self._cleanup = on_cleanup(self.stop)
        try:
            self._container = make()
            self._container.start()
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
