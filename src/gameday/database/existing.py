"""The `dsn` database provider: a database that already exists (GAMEDAY_DSN, a URL or
key=value string; libpq PG* variables fill the gaps).

Scenarios write to their database (seed data, run migrations), so an existing database
is used only when it is marked as a rehearsal target::

    COMMENT ON DATABASE app_rehearsal IS 'gameday:rehearsal=true';

or when GAMEDAY_ALLOW_NON_REHEARSAL=1 says so explicitly.
"""

from __future__ import annotations

from typing import Any

from gameday import settings
from gameday.database.admin import recreate_database
from gameday.database.dsn import Dsn
from gameday.database.snapshot import connect_source
from gameday.errors import ConfigError
from gameday.journal import Journal
from gameday.lifecycle import Provider

REHEARSAL_MARK = "gameday:rehearsal=true"


def require_rehearsal_target(target: Dsn, *, what: str = "database") -> None:
    """Refuse (ConfigError, exit 2) a database not marked as a rehearsal target, unless
    GAMEDAY_ALLOW_NON_REHEARSAL=1 says so explicitly."""
    with connect_source(target, what=what) as conn:
        comment = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]  # type: ignore[index]
    if REHEARSAL_MARK not in (comment or "") and settings.get("allow-non-rehearsal") != "1":
        raise ConfigError(
            f"database {target.redacted()} is not marked as a rehearsal target",
            fix=f"run COMMENT ON DATABASE {target.dbname} IS '{REHEARSAL_MARK}', "
            "or set GAMEDAY_ALLOW_NON_REHEARSAL=1 to act on it anyway",
        )


class ExistingDatabase(Provider):
    name = "dsn"

    def __init__(self, label: str = "gameday", *, dsn: str | None = None, journal: Journal | None = None,
                 **_: Any) -> None:
        text = dsn if dsn is not None else settings.get("dsn")
        self.target = Dsn.parse(text or None)
        if not self.target.dbname:
            raise ConfigError("the dsn database provider needs a database name",
                              fix="set GAMEDAY_DSN=postgresql://user@host:5432/dbname (or PGDATABASE)")
        self.label = label
        self.journal = journal
        self.database = self.target.dbname

    def start(self) -> ExistingDatabase:
        require_rehearsal_target(self.target, what=f"database {self.label}")
        if self.journal is not None:
            self.journal.event("database.start", f"existing database {self.target.redacted()}")
        return self

    def stop(self) -> None:
        """Nothing to stop: gameday did not start this server."""

    def endpoints(self) -> dict[str, Any]:
        return {"dsn": self.target.redacted(), "host": self.target.host, "port": self.target.port,
                "database": self.database}

    @property
    def dsn(self) -> str:
        return str(self.target)

    def dsn_for(self, database: str) -> str:
        return str(self.target.with_database(database))

    def create_database(self, name: str) -> str:
        """A scratch database beside the target (the role needs CREATEDB)."""
        return recreate_database(self.target, name)
