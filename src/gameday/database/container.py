"""Postgres in a Docker container (testcontainers), for machines with a Docker daemon.

Chosen by :mod:`gameday.providers` when a daemon answers (or GAMEDAY_DATABASE=container).
It offers what :class:`gameday.database.local.LocalPostgres` offers (``.dsn``,
``.dsn_for()``, ``create_database()``), so snapshot/restore code is the same.  The port
is published on 127.0.0.1 only.
"""

from __future__ import annotations

import secrets
from typing import Any

from gameday.containers import ContainerProvider
from gameday.database.admin import recreate_database
from gameday.database.dsn import Dsn
from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import free_port

DEFAULT_IMAGE = "postgres:16-alpine"


class PostgresContainerDatabase(ContainerProvider):
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

    def start(self) -> PostgresContainerDatabase:
        self.port = free_port()

        def make() -> Any:
            from testcontainers.community.postgres import PostgresContainer

            container = PostgresContainer(self.image, username="gameday", password=self._password, dbname=self.database)
            # with_bind_ports() takes a port only; an (ip, port) pair in .ports goes straight to the
            # Docker SDK, so the server is published on loopback only, never on 0.0.0.0
            container.ports["5432"] = ("127.0.0.1", self.port)  # type: ignore[assignment]
            return container

        self._start_container(make, what="container Postgres", local_setting="GAMEDAY_DATABASE",
                              fix="check `docker logs` and that the image can be pulled")
        if self.journal is not None:
            self.journal.event("database.start", f"Postgres {self.image} in a container on 127.0.0.1:{self.port}")
        return self

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
