"""Rollback procedure: ``alembic downgrade`` as a rollback step, proven by its effect.

    result = alembic_downgrade(dsn, "-1", journal=journal)   # raises RehearsalFailed unless proven
    result.act_s, result.revision_after                      # 0.04, "0003"

Proof, after the downgrade:
* alembic_version holds exactly the target revision (none for ``base``);
* the schema, read from the catalog, equals the target revision's reference schema —
  built beforehand by upgrading an empty scratch database on the same server to the
  target (so the check needs CREATEDB there, or pass ``expected_schema``).
The act time is the wall time of the alembic command alone; building the reference and
verifying are timed separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gameday.database.dsn import Dsn
from gameday.database.migrations.catalog import SchemaSnapshot, diff_schema, schema_snapshot
from gameday.database.migrations.project import (
    MigrationFailed,
    MigrationProject,
    ScratchDatabases,
    check_connection,
    current_revision,
)
from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Journal


@dataclass
class DowngradeResult:
    database: str  # redacted DSN
    from_revision: str | None
    target: str | None  # None: base
    revision_after: str | None = None
    act_s: float | None = None
    verify_s: float = 0.0
    reference_s: float = 0.0
    schema_diff: list[str] = field(default_factory=list)  # differences from the target's reference schema
    error: str | None = None  # the downgrade's own failure, one line

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = [self.error] if self.error else []
        if self.revision_after != self.target:
            out.append(f"alembic_version is {self.revision_after or 'base'}, expected {self.target or 'base'}")
        if self.schema_diff:
            out.append(f"schema differs from revision {self.target or 'base'}: " + "; ".join(self.schema_diff))
        return out

    def require_ok(self) -> DowngradeResult:
        if not self.ok:
            raise RehearsalFailed(
                f"alembic downgrade {self.from_revision} -> {self.target or 'base'} on {self.database}: "
                + " | ".join(self.problems())
            )
        return self


def reference_schema(project: MigrationProject, revision: str | None, server_dsn: str) -> SchemaSnapshot:
    """The schema revision ``revision`` produces, built in a scratch database on the same server."""
    with ScratchDatabases(server_dsn, prefix="gameday_ref") as scratch:
        dsn = scratch.create(revision or "base")
        project.upgrade(dsn, revision)
        return schema_snapshot(dsn)


def resolve_target(project: MigrationProject, target: str, current: str | None) -> str | None:
    """A concrete target strictly below ``current`` (``-1``, an id, or ``base``)."""
    chain = [r.revision for r in project.history()]
    if current is None:
        raise ConfigError("the database has no alembic revision to roll back",
                          fix="upgrade it first, or point --dsn at the migrated database")
    resolved = project.resolve(target, current)
    if current not in chain:
        raise ConfigError(f"the database is at revision {current}, which {project.path} does not know",
                          fix="pass the --script-location of the migrations that database was built with")
    if resolved is not None and chain.index(resolved) >= chain.index(current):
        raise ConfigError(f"target {target} ({resolved}) is not below the current revision {current}",
                          fix="a rollback goes down: pass -1, an older revision or base")
    return resolved


def alembic_downgrade(dsn: str, target: str = "-1", *, script_location: Path | str | None = None,
                      expected_schema: SchemaSnapshot | None = None, journal: Journal | None = None,
                      check: bool = True, act_target_s: float | None = None,
                      url_env: Iterable[str] = ()) -> DowngradeResult:
    """Downgrade the database at ``dsn`` to ``target`` and verify revision and schema.

    Raises RehearsalFailed when ``check`` and the downgrade failed or did not land on the
    target's schema; ConfigError for bad input (unknown revision, unreachable DSN, ...)."""
    with MigrationProject(script_location, url_env=url_env) as project:
        return _downgrade(project, dsn, target, expected_schema, journal, check, act_target_s)


def _downgrade(project: MigrationProject, dsn: str, target: str, expected_schema: SchemaSnapshot | None,
               journal: Journal | None, check: bool, act_target_s: float | None,
               act: Callable[[DowngradeResult], None] | None = None) -> DowngradeResult:
    """Resolve the target and build its reference schema, ``act`` (default: run the downgrade), then
    verify the revision and schema the database is left at."""
    check_connection(dsn)
    current = current_revision(dsn)
    resolved = resolve_target(project, target, current)
    result = DowngradeResult(Dsn.parse(dsn).redacted(), current, resolved)
    began = time.monotonic()
    expected = expected_schema or reference_schema(project, resolved, dsn)
    result.reference_s = time.monotonic() - began

    if act is None:
        try:
            result.act_s = project.downgrade(dsn, resolved)
        except MigrationFailed as failed:
            result.error = failed.message
    else:
        act(result)

    began = time.monotonic()
    result.revision_after = current_revision(dsn)
    result.schema_diff = diff_schema(expected, schema_snapshot(dsn)).lines()
    result.verify_s = time.monotonic() - began
    _record(result, journal, act_target_s)
    return result.require_ok() if check else result


LIVE_POLL_S = 0.2  # how often a live game day reads alembic_version for the people's downgrade


def people_downgrade(project: MigrationProject, dsn: str, target: str, *, journal: Journal | None,
                     expected_schema: SchemaSnapshot | None = None) -> DowngradeResult:
    """A live game day: the people run the downgrade (alembic, their scripts, a pipeline); gameday does not.
    Their rollback is alembic_version moving off the current revision, seen by a read every
    ``LIVE_POLL_S``; then revision and schema are verified as for a scripted downgrade (the reference
    schema is built before the hand-over, so it is not the people's time)."""
    return _downgrade(project, dsn, target, expected_schema, journal, False, None,
                      act=lambda result: _wait_for_the_people(project, dsn, result, journal))


def _wait_for_the_people(project: MigrationProject, dsn: str, result: DowngradeResult,
                         journal: Journal | None) -> None:
    from gameday import settings
    from gameday.rehearsals.live import say_to_people, wait_for_people

    current = result.from_revision
    scripted = f"alembic -c {project.path}/alembic.ini -x dsn=$DATABASE_URL downgrade {result.target or 'base'}"
    say_to_people(f"LIVE: the incident is yours. export DATABASE_URL={result.database}  (alembic migrations "
                  f"{project.path}; the database is at {current}, release migration to roll back). gameday will not "
                  f"act. Giving up after {settings.get_float('live-give-up'):g} s.")
    handed = time.time()
    seen = wait_for_people(lambda: _moved(dsn, current), scripted=scripted, say=say_to_people, journal=journal,
                           poll=LIVE_POLL_S).revision
    moved = time.time()
    say_to_people(f"ACTED: alembic_version is now {seen or 'base'}")
    if journal is not None:
        journal.event("live-action", f"the people moved alembic_version {current} -> {seen or 'base'}", at=moved)
        journal.measure("time to roll back the migration (people)", moved - handed, "s",
                        detail=f"the hand-over to alembic_version moving (read every {LIVE_POLL_S:g} s)")


@dataclass(frozen=True)
class _Moved:
    revision: str | None


def _moved(dsn: str, current: str | None) -> _Moved | None:
    """alembic_version, once it is no longer ``current`` (None can be a revision: base)."""
    seen = current_revision(dsn)
    return _Moved(seen) if seen != current else None


def _record(result: DowngradeResult, journal: Journal | None, act_target_s: float | None) -> None:
    if journal is None:
        return
    move = f"{result.from_revision} -> {result.target or 'base'}"
    if result.act_s is not None:
        journal.measure("alembic downgrade act", result.act_s, "s", target=act_target_s, detail=move)
    journal.measure("alembic downgrade verify", result.verify_s, "s", detail="revision + schema vs reference")
    journal.event(
        "rollback",
        f"alembic downgrade {move}: " + ("verified" if result.ok else "; ".join(result.problems())),
        procedure="alembic-downgrade",
        database=result.database,
        from_revision=result.from_revision,
        target=result.target,
        revision_after=result.revision_after,
        schema_diff=result.schema_diff,
        error=result.error,
        ok=result.ok,
    )
