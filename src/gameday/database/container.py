"""Postgres in a Docker container (testcontainers), for machines with a Docker daemon.

Chosen by :mod:`gameday.providers` when a daemon answers (or GAMEDAY_DATABASE=container).
It offers what :class:`gameday.database.local.LocalPostgres` offers (``.dsn``,
``.dsn_for()``, ``create_database()``), so snapshot/restore code is the same.  The port
is published on 127.0.0.1 only.
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from typing import Any

from gameday.database.dsn import Dsn
from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import Provider, cancel_cleanup, free_port, on_cleanup

DEFAULT_IMAGE = "postgres:16-alpine"


class PostgresContainerDatabase(Provider):
    """``with PostgresContainerDatabase() as db: psycopg.connect(db.dsn)``"""

    name = "container-postgres"

    def __init__(self, label: str = "gameday", *, database: str = "gameday", image: str = DEFAULT_IMAGE,
                 journal: Journal | None = None, start_timeout: float = 120.0) -> None:
        self.label = label
        self.database = database
        self.image = image
        self.journal = journal
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._password = secrets.token_urlsafe(16)  # throwaway; redacted from every report
        self._container: Any = None
        self._cleanup: int | None = None

    def start(self) -> PostgresContainerDatabase:
        from gameday.providers import docker_status

        status = docker_status()
        if not status:
            raise EnvironmentNotReady(f"container Postgres: {status.detail}", fix="start Docker, or set GAMEDAY_DATABASE=local")
        from testcontainers.community.postgres import PostgresContainer

        self.port = free_port()
        self._cleanup = on_cleanup(self.stop)
        try:
            container = PostgresContainer(self.image, username="gameday", password=self._password, dbname=self.database)
            # with_bind_ports() takes a port only; an (ip, port) pair in .ports goes straight to the
            # Docker SDK, so the server is published on loopback only, never on 0.0.0.0
            container.ports["5432"] = ("127.0.0.1", self.port)  # type: ignore[assignment]
            self._container = container
            container.start()
        except Exception as exc:  # noqa: BLE001 - docker SDK and testcontainers raise many types
            raise EnvironmentNotReady(f"container Postgres ({self.image}) did not start: {_first_line(exc)}",
                                      fix="check `docker logs` and that the image can be pulled") from None
        if self.journal is not None:
            self.journal.event("database.start", f"Postgres {self.image} in a container on 127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with suppress(Exception):  # already gone
                container.stop()
        if self._cleanup is not None:
            cancel_cleanup(self._cleanup)
            self._cleanup = None

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
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn_for(name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
