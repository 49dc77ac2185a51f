"""The service's own database in a Kubernetes rehearsal: a release that changed the schema, rolled back under load.

A scenario gives the service a scratch PostgreSQL (the ``database`` provider), migrated to a
revision of the team's alembic history and seeded. Its pods read the URL from a Secret the
rehearsal owns, under the variable the project file names (``database: {env: DATABASE_URL}``).
The release's migration runs under load, then its rollout; the rollback is the code (any
Kubernetes action) and, or not, the migration (``alembic downgrade``, under load too). At the
end the rows written in between are accounted for: how many the release wrote, and which of
their values the migration's rollback dropped or the previous release does not read.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from gameday.database.migrations.catalog import (
    SchemaSnapshot,
    connect,
    diff_schema,
    qualified,
    schema_snapshot,
)
from gameday.database.migrations.rehearsal import MigrationRehearsal
from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Journal
from gameday.procedures.alembic_downgrade import reference_schema
from gameday.project import Service

SECRET_KEY = "url"


@dataclass(frozen=True)
class Tables:
    """Row counts, and the highest key of tables with a single integer primary key, at one moment."""

    rows: dict[str, int] = field(default_factory=dict)
    last_key: dict[str, int] = field(default_factory=dict)


class ServiceDatabase:
    def __init__(self, service: Service, dsn: str, *, env: str, script_location: Path | str | None,
                 journal: Journal | None) -> None:
        self.service = service
        self.env = env  # the variable the service's container reads the URL from
        self.migrations = MigrationRehearsal(dsn, script_location=script_location, journal=journal)
        self.journal = journal
        self.secret = f"{service.deployment}-gameday-database"
        self.release_revision: str | None = None  # the migration the release applied
        self.target: str | None = None  # the revision its rollback goes down to
        self.expected: SchemaSnapshot | None = None  # that revision's schema, built before the incident
        self.before: Tables | None = None  # the tables when the release began
        self.dropped: dict[str, tuple[int, int]] = {}  # table.column -> (values dropped, of rows written since)

    @property
    def dsn(self) -> str:
        return self.migrations.dsn

    # -- the environment ---------------------------------------------------------------------
    def prepare(self, revision: str, rows: int) -> None:
        """Migrate to ``revision`` and seed every table (the release before the incident)."""
        self.migrations.prepare(revision, rows=rows)

    def secret_doc(self, namespace: str) -> dict[str, Any]:
        url = base64.b64encode(self.dsn.encode()).decode()
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.secret, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "gameday"}},
                "data": {SECRET_KEY: url}}

    def inject(self, docs: list[dict[str, Any]], container: str | None) -> list[dict[str, Any]]:
        """The Secret first, and the service's container in each of its Deployments reading the URL from it."""
        var = {"name": self.env, "valueFrom": {"secretKeyRef": {"name": self.secret, "key": SECRET_KEY}}}
        for doc in docs:
            if doc.get("kind") != "Deployment" or not str(doc["metadata"]["name"]).startswith(self.service.deployment):
                continue
            containers = doc["spec"]["template"]["spec"]["containers"]
            target = next((c for c in containers if c.get("name") == container), containers[0])
            target["env"] = [v for v in target.get("env") or [] if v.get("name") != self.env] + [var]
        namespace = next((d["metadata"].get("namespace") for d in docs if d["metadata"].get("namespace")),
                         self.service.namespace)
        return [self.secret_doc(namespace), *docs]

    # -- the release and its rollback ----------------------------------------------------------
    def before_release(self, revision: str) -> None:
        """Before the release's migration (t0): where a rollback of it lands, and that revision's schema,
        built now so that it is no part of the on-call's time; the tables are counted."""
        project = self.migrations.project
        resolved = project.resolve(revision)
        self.release_revision = revision
        self.target = project.previous(resolved or "")
        self.expected = reference_schema(project, self.target, self.dsn)
        self.before = self.tables()

    def migrate(self, revision: str) -> float:
        """``alembic upgrade`` to the release's migration, under the traffic of the release before it."""
        return self.migrations.apply(revision)

    def roll_back(self, revision: str) -> None:
        """``alembic downgrade`` of the release's migration under load; the values it drops are counted first."""
        if revision != self.release_revision:
            raise ConfigError(f"migration {revision} is not the one the release applied ({self.release_revision})",
                              fix=f"roll back migration {self.release_revision}")
        assert self.expected is not None and self.before is not None
        now = schema_snapshot(self.dsn)
        self.dropped = {f"{table}.{column}": self._values(now, table, column)
                        for table, column, _ in diff_schema(now, self.expected).columns_dropped}
        self.migrations.roll_back(revision, expected_schema=self.expected)
        self.migrations.require_verified()

    # -- what the rows written in between became ---------------------------------------------
    def tables(self) -> Tables:
        snapshot = schema_snapshot(self.dsn)
        rows, last = {}, {}
        with connect(self.dsn) as conn:
            for name, table in snapshot.tables.items():
                if name == "alembic_version":
                    continue
                key = table.primary_key[0] if len(table.primary_key) == 1 else ""
                whole = bool(key) and table.columns[key].base_type in ("int2", "int4", "int8")
                query = sql.SQL("SELECT count(*), {} FROM {}").format(
                    sql.SQL("max({})").format(sql.Identifier(key)) if whole else sql.SQL("NULL"), qualified(name))
                count, highest = conn.execute(query).fetchone() or (0, None)
                rows[name] = int(count)
                if whole:
                    last[name] = int(highest or 0)
        return Tables(rows, last)

    def _values(self, snapshot: SchemaSnapshot, table: str, column: str) -> tuple[int, int]:
        """Non-null values of ``table.column`` (a table of ``snapshot``): all, and in rows written since the
        release began."""
        if self.before is None:
            raise RehearsalFailed("no release migration ran in this scenario, so no row was written during one",
                                  fix="start the incident with 'migration REV is applied and release ... is rolled out'")
        key = snapshot.tables[table].primary_key
        since = self.before.last_key.get(table)
        newer = (sql.SQL("count({}) FILTER (WHERE {} > {})").format(sql.Identifier(column), sql.Identifier(key[0]),
                                                                   sql.Literal(since))
                 if since is not None else sql.SQL("0"))
        query = sql.SQL("SELECT count({}), {} FROM {}").format(sql.Identifier(column), newer, qualified(table))
        with connect(self.dsn) as conn:
            total, written = conn.execute(query).fetchone() or (0, 0)
        return int(total), int(written)

    def require_dropped(self, column: str) -> int:
        """The migration's rollback dropped values of ``table.column`` that rows written during the incident held."""
        if column not in self.dropped:
            dropped = ", ".join(self.dropped) or "no column"
            raise RehearsalFailed(f"the migration rollback dropped {dropped}, not {column}")
        total, written = self.dropped[column]
        return self._counted(column, f"values of {column} lost by the migration rollback", total, written,
                             f"{written} of them in rows written during the incident")

    def require_kept(self, column: str) -> int:
        """Rows written during the incident still hold their values of ``table.column`` (the migration stayed)."""
        table, _, name = column.rpartition(".")
        snapshot = schema_snapshot(self.dsn)
        if table not in snapshot.tables or name not in snapshot.tables[table].columns:
            raise RehearsalFailed(f"column {column} is gone: the values written during the incident were lost")
        total, written = self._values(snapshot, table, name)
        return self._counted(column, f"values of {column} kept", written, written,
                             f"in rows written during the incident ({total} in the table)")

    def _counted(self, column: str, name: str, value: int, written: int, detail: str) -> int:
        """The figure measured; none written during the incident means the release never wrote the column."""
        if self.journal is not None:
            self.journal.measure(name, value, "values", detail=detail)
        if written == 0:
            raise RehearsalFailed(f"no row written during the incident held a value of {column}: the release "
                                  "never wrote it, so what became of it was not rehearsed")
        return written

    def account(self) -> None:
        """At scenario end: rows the release's time added per table, and the values its rollback dropped."""
        if self.journal is None or self.before is None:
            return
        now = self.tables()
        added = {t: now.rows.get(t, 0) - self.before.rows.get(t, 0) for t in sorted(set(now.rows) | set(self.before.rows))}
        lost = {c: {"values": t, "written_during": w} for c, (t, w) in self.dropped.items()}
        text = ", ".join(f"{t} +{n}" for t, n in added.items() if n) or "no rows"
        self.journal.event("data", f"written since the release began: {text}"
                           + (f"; dropped by the migration rollback: {', '.join(lost)}" if lost else ""),
                           rows_added=added, dropped=lost, revision=self.release_revision, target=self.target)
