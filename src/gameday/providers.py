"""Which provider backs each environment part: explicit config, else Docker, else local.

    >>> choose("database").name           # doctest: +SKIP
    'local'                                # no Docker daemon answers here

Order (ARCHITECTURE.md, "Providers"): an explicit choice (argument, or GAMEDAY_DATABASE /
GAMEDAY_CLUSTER / GAMEDAY_AWS set in the environment) wins; otherwise the Docker-backed
provider when a Docker daemon answers; otherwise the local embedded default.  An
explicit Docker-backed choice without a daemon is one clear error line.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gameday.errors import ConfigError, EnvironmentNotReady

# kind -> provider name -> "module:Class"; imported only when chosen
REGISTRY: dict[str, dict[str, str]] = {
    "database": {
        "local": "gameday.database.local:LocalPostgres",
        "container": "gameday.database.container:PostgresContainerDatabase",
        "dsn": "gameday.database.existing:ExistingDatabase",
    },
    "cluster": {
        "local": "gameday.cluster.local:LocalCluster",
        "k3s": "gameday.cluster.docker:K3sCluster",
        "kubeconfig": "gameday.cluster.kubeconfig:KubeconfigCluster",
    },
    "aws": {
        "moto": "gameday.aws.moto_server:MotoServer",
        "real": "gameday.aws.target:RealAws",
    },
}
DOCKER_BACKED: dict[str, str] = {"database": "container", "cluster": "k3s"}
LOCAL_DEFAULT: dict[str, str] = {"database": "local", "cluster": "local", "aws": "moto"}
NEEDS_DOCKER = {(kind, name) for kind, name in DOCKER_BACKED.items()}
AUTO = ("", "auto")


@dataclass(frozen=True)
class DockerStatus:
    answers: bool
    detail: str  # why not, in one line, when it does not answer

    def __bool__(self) -> bool:
        return self.answers


def docker_status(timeout: float = 2.0) -> DockerStatus:
    """Does a Docker daemon answer?  Uses the Docker SDK (as testcontainers does)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
        return DockerStatus(True, f"Docker daemon answers at {host}")
    except Exception as exc:  # noqa: BLE001 - any failure means "no daemon" here
        cli = "the docker CLI is installed but" if shutil.which("docker") else "the docker CLI is not installed and"
        reason = _short_reason(exc)
        return DockerStatus(False, f"no Docker daemon answers at {host} ({cli} no engine is running: {reason})")


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for marker in ("No such file or directory", "Connection refused", "Permission denied", "timed out"):
        if marker.lower() in text.lower():
            return marker
    return text[:120]


@dataclass(frozen=True)
class Choice:
    kind: str
    name: str
    reason: str

    def load(self) -> type:
        module_name, _, attribute = REGISTRY[self.kind][self.name].partition(":")
        return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]


def _env_choice(kind: str) -> str | None:
    value = os.environ.get(f"GAMEDAY_{kind.upper()}", "").strip()
    return None if value in AUTO else value


def choose(kind: str, explicit: str | None = None, *, docker: Callable[[], DockerStatus] = docker_status) -> Choice:
    """Pick the provider for ``kind`` (database, cluster, aws); see the module docstring."""
    if kind not in REGISTRY:
        raise ConfigError(f"no providers for {kind!r}", fix=f"use one of {', '.join(sorted(REGISTRY))}")
    wanted = explicit if explicit not in (None, *AUTO) else _env_choice(kind)
    if wanted is not None:
        if wanted not in REGISTRY[kind]:
            raise ConfigError(f"{kind} provider {wanted!r} is unknown",
                              fix=f"use one of {', '.join(sorted(REGISTRY[kind]))} (GAMEDAY_{kind.upper()})")
        if (kind, wanted) in NEEDS_DOCKER:
            status = docker()
            if not status:
                raise EnvironmentNotReady(f"{kind} provider {wanted!r} needs Docker: {status.detail}",
                                          fix="start Docker (as root without one: `gameday docker engine`, then export "
                                              f"the DOCKER_HOST it prints), or set GAMEDAY_{kind.upper()}={LOCAL_DEFAULT[kind]}")
        return Choice(kind, wanted, "explicit")
    if kind in DOCKER_BACKED:
        status = docker()
        if status:
            return Choice(kind, DOCKER_BACKED[kind], status.detail)
        return Choice(kind, LOCAL_DEFAULT[kind], f"local default: {status.detail}")
    return Choice(kind, LOCAL_DEFAULT[kind], "local default")


def provider(kind: str, explicit: str | None = None, **options: Any) -> Any:
    """An unstarted provider instance for ``kind``: ``with provider("database") as db: ...``

    Every caller (the CLI, the fixtures, the pytest plugin) comes through here; with a
    ``journal`` in ``options`` the run records which provider was chosen and why.
    """
    choice = choose(kind, explicit)
    journal = options.get("journal")
    if journal is not None:
        journal.environment.setdefault("providers", {})[kind] = {"name": choice.name, "why": choice.reason}
        journal.event("provider", f"{kind}: {choice.name} ({choice.reason})", part=kind, provider=choice.name,
                      why=choice.reason)
    return choice.load()(**options)
