"""Postgres in a Docker container (testcontainers), for machines with a Docker daemon.

Chosen by :mod:`gameday.providers` when a daemon answers (or GAMEDAY_DATABASE=container).
It offers what :class:`gameday.database.local.LocalPostgres` offers (``.dsn``,
``.dsn_for()``, ``create_database()``), so snapshot/restore code is the same.  The server is
reachable on 127.0.0.1 only: published on loopback where the daemon has a bridge network, else
(an engine with no bridge, like gameday's own) on the host's network listening on 127.0.0.1.

The image (GAMEDAY_POSTGRES_IMAGE, or): the PostgreSQL image built here from the machine's own
PostgreSQL when the engine has it, else the official image, pulled as usual; where no registry
answers, the image is built here (:mod:`gameday.containers.postgres_image`).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from gameday.containers import ContainerProvider, has_image
from gameday.database.admin import recreate_database
from gameday.database.dsn import Dsn
from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import free_port, wait_until

DEFAULT_IMAGE = "postgres:16-alpine"


def choose_image(client: Any, asked: str = "", why_asked: str = "GAMEDAY_POSTGRES_IMAGE") -> tuple[str, str]:
    """The image to run and why: asked for, built here, or the official one (present or pulled);
    with no registry to pull from, the official image is replaced by one built here."""
    from docker.errors import DockerException

    from gameday.containers import postgres_image

    if asked:
        return asked, why_asked
    try:
        local: str | None = postgres_image.installed().tag
    except EnvironmentNotReady:
        local = None  # no PostgreSQL on this machine to build one from
    if local and has_image(client, local):
        return local, "built here from the machine's PostgreSQL"
    if has_image(client, DEFAULT_IMAGE):
        return DEFAULT_IMAGE, "the official image, present"
    try:
        client.images.pull(DEFAULT_IMAGE)
        return DEFAULT_IMAGE, "the official image, pulled"
    except DockerException:
        if local is None:
            raise EnvironmentNotReady(f"container Postgres: {DEFAULT_IMAGE} cannot be pulled (no registry answers) and "
                                      "this machine has no PostgreSQL to build an image from",
                                      fix="install Debian's postgresql packages, or set GAMEDAY_POSTGRES_IMAGE to an "
                                          "image the engine has") from None
        began = time.monotonic()
        tag, how = postgres_image.ensure_image(client)
        return tag, (f"{DEFAULT_IMAGE} could not be pulled (no registry answers): built here from the machine's "
                     f"PostgreSQL ({how}, {time.monotonic() - began:.1f} s)")


class PostgresContainerDatabase(ContainerProvider):
    """``with PostgresContainerDatabase() as db: psycopg.connect(db.dsn)``"""

    name = "container-postgres"

    def __init__(self, label: str = "gameday", *, database: str = "gameday", image: str = "",
                 journal: Journal | None = None, start_timeout: float = 120.0) -> None:
        self.label = label
        self.database = database
        self.image = image  # "" = choose_image()
        self.journal = journal
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.ready_s: float | None = None
        self._password = secrets.token_urlsafe(16)  # throwaway; redacted from every report

    def start(self) -> PostgresContainerDatabase:
        from gameday import settings

        self.port = free_port()
        why = ""

        def make(client: Any) -> Any:
            from testcontainers.core.container import DockerContainer

            nonlocal why
            if self.image:
                why = "the image of the server it stands beside"
            else:
                self.image, why = choose_image(client, settings.get("postgres-image"))
            container = (DockerContainer(self.image).with_env("POSTGRES_USER", "gameday")
                         .with_env("POSTGRES_PASSWORD", self._password).with_env("POSTGRES_DB", self.database))
            if _has_bridge(client):
                # with_bind_ports() takes a port only; an (ip, port) pair in .ports goes straight to the
                # Docker SDK, so the server is published on loopback only, never on 0.0.0.0
                container.ports["5432"] = ("127.0.0.1", self.port)  # type: ignore[assignment]
            else:  # the host's network: the server itself listens on loopback only
                container.with_kwargs(network_mode="host")
                container.with_command(["postgres", "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}"])
            return container

        began = time.monotonic()
        container = self._start_container(make, what="container Postgres", local_setting="GAMEDAY_DATABASE",
                                          fix="check `docker logs` and that the image can be pulled or built")
        import psycopg

        wait_until(lambda: self._accepts(container), timeout=self.start_timeout, interval=0.1,
                   what=f"container Postgres {self.label}", transient=(psycopg.OperationalError, OSError),
                   logs=lambda: _logs(container))
        self.ready_s = time.monotonic() - began
        if self.journal is not None:
            self.journal.event("database.start", f"Postgres {self.image} in a container on 127.0.0.1:{self.port} "
                               f"({why}; ready in {self.ready_s:.2f} s)", image=self.image, why=why,
                               ready_s=round(self.ready_s, 3))
        return self

    def _accepts(self, container: Any) -> bool:
        import psycopg

        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            raise EnvironmentNotReady(f"container Postgres {self.label} ({self.image}) exited before it accepted "
                                      f"connections: {' | '.join(_logs(container).strip().splitlines()[-3:])}",
                                      fix="see its log lines above; set GAMEDAY_DATABASE=local to use a local Postgres")
        with psycopg.connect(self.dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def endpoints(self) -> dict[str, Any]:
        return {"dsn": self.dsn, "host": "127.0.0.1", "port": self.port, "database": self.database}

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        if self.port is None:
            raise EnvironmentNotReady(f"container Postgres {self.label} is not started")
        return str(Dsn.build(host="127.0.0.1", port=self.port, user="gameday", password=self._password, dbname=database))

    def create_database(self, name: str) -> str:
        """Create another database on this server (e.g. a scratch copy); returns its DSN."""
        return recreate_database(Dsn.parse(self.dsn, use_env=False), name)


def _has_bridge(client: Any) -> bool:
    return bool(client.networks.list(names=["bridge"]))


def _logs(container: Any) -> str:
    try:
        return str(container.get_wrapped_container().logs(tail=20).decode(errors="replace"))
    except Exception:  # noqa: BLE001 - logs are a courtesy in an error message
        return ""
