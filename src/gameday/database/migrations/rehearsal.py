"""A migration rollback rehearsal on one database, for features and scripts.

    rehearsal = MigrationRehearsal(dsn, journal=journal)
    rehearsal.prepare("0003", rows=10000, release="1.2.0")  # migrate + seed + record a baseline
    rehearsal.apply("0004")                                  # the release's migration
    rehearsal.roll_back("0004")                              # alembic downgrade to 0003
    rehearsal.require_revision("0003"); rehearsal.require_data_unchanged(10000)

Each ``require_*`` raises RehearsalFailed (the rollback did not hold) with one line;
the database is the caller's (a throwaway one in features: the ``database`` fixture).
"""

from __future__ import annotations

from pathlib import Path

from gameday import settings
from gameday.database.migrations.catalog import (
    DataSnapshot,
    SchemaSnapshot,
    data_snapshot,
    diff_data,
    schema_snapshot,
)
from gameday.database.migrations.check import MigrationCheck, RevisionVerdict, check_migrations
from gameday.database.migrations.project import MigrationProject, current_revision
from gameday.database.migrations.seed import seed_database
from gameday.errors import RehearsalFailed
from gameday.journal import Journal
from gameday.procedures.alembic_downgrade import DowngradeResult, alembic_downgrade


class MigrationRehearsal:
    def __init__(self, dsn: str, *, script_location: Path | str | None = None, journal: Journal | None = None) -> None:
        self.dsn = dsn
        self.project = MigrationProject(script_location)
        self.journal = journal
        self.baseline: DataSnapshot | None = None
        self.rollback: DowngradeResult | None = None
        self.check: MigrationCheck | None = None
        self.live = settings.get("live") == "1"  # a live game day: the people roll the migration back

    def close(self) -> None:
        """Stop the migrations' worker process (alembic runs there, away from this environment)."""
        self.project.close()

    # -- arrange / act -----------------------------------------------------------
    def prepare(self, revision: str, *, rows: int, release: str = "") -> dict[str, int]:
        """Migrate to ``revision``, seed every table with ``rows`` rows, record the data baseline."""
        self.project.upgrade(self.dsn, self.project.resolve(revision))
        seeded = seed_database(self.dsn, rows).rows
        self.baseline = data_snapshot(self.dsn)
        if self.journal is not None:
            self.journal.event("migration-baseline", f"database at {revision} ({release or 'release ?'}) seeded",
                               revision=revision, release=release, rows=seeded)
        return seeded

    def apply(self, revision: str) -> float:
        seconds = self.project.upgrade(self.dsn, self.project.resolve(revision))
        if self.journal is not None:
            self.journal.measure(f"alembic upgrade {revision}", seconds, "s")
        return seconds

    def roll_back(self, revision: str, *, expected_schema: SchemaSnapshot | None = None) -> DowngradeResult:
        """Roll back ``revision`` (downgrade to its parent); failures are kept, not raised.
        ``expected_schema``: the parent's schema, built beforehand (else built here, before the act)."""
        target = self.project.previous(self.project.resolve(revision) or "") or "base"
        if self.live:  # the people run it; gameday watches alembic_version and verifies what they did
            from gameday.procedures.alembic_downgrade import people_downgrade

            self.rollback = people_downgrade(self.project, self.dsn, target, journal=self.journal,
                                             expected_schema=expected_schema)
            return self.rollback
        self.rollback = alembic_downgrade(self.dsn, target, script_location=self.project.path,
                                          expected_schema=expected_schema, journal=self.journal, check=False)
        return self.rollback

    def check_revision(self, revision: str, *, rows: int) -> RevisionVerdict:
        """The reversibility proof for one revision, on scratch databases of this server."""
        self.check = check_migrations(self.project.path, dsn=self.dsn, revisions=[revision], rows=rows,
                                      journal=self.journal)
        return self.check.verdicts[0]

    # -- assert ---------------------------------------------------------------------
    def require_revision(self, revision: str) -> None:
        found = current_revision(self.dsn)
        if found != revision:
            raise RehearsalFailed(f"the database is at revision {found or 'base'}, expected {revision}")

    def require_schema_of(self, revision: str) -> None:
        result = self._require_rollback()
        if result.target != revision:
            raise RehearsalFailed(f"the rollback targeted {result.target or 'base'}, not {revision}")
        if result.schema_diff:
            raise RehearsalFailed(f"schema differs from what {revision} creates: " + "; ".join(result.schema_diff))

    def require_data_unchanged(self, rows: int, table: str = "orders") -> None:
        if self.baseline is None:
            raise RehearsalFailed("no data baseline was recorded", fix="prepare the database first")
        now = data_snapshot(self.dsn, schema_snapshot(self.dsn))
        if self.journal is not None:
            self.journal.measure(f"rows in {table} after rollback", now.rows(table), "rows", target=rows, bound="min")
        if now.rows(table) != rows:
            raise RehearsalFailed(f"table {table} has {now.rows(table)} rows after the rollback, expected {rows}")
        changed = diff_data(self.baseline, now)
        if not changed.empty:
            raise RehearsalFailed("data changed by the rollback: " + "; ".join(changed.lines()))

    def require_act_within(self, seconds: float) -> None:
        result = self._require_rollback()
        if result.act_s is None:
            raise RehearsalFailed(f"the downgrade did not complete: {result.error}")
        if self.journal is not None:
            self.journal.measure("rollback act time (alembic downgrade)", result.act_s, "s", target=seconds)
        if result.act_s > seconds:
            raise RehearsalFailed(f"alembic downgrade took {result.act_s:.2f} s, the target is {seconds:g} s")

    def require_refused(self, reason_contains: str) -> str:
        result = self._require_rollback()
        if result.error is None:
            raise RehearsalFailed("the downgrade ran, but it was expected to be refused")
        if reason_contains.lower() not in result.error.lower():
            raise RehearsalFailed(f"the downgrade failed for another reason than {reason_contains!r}: {result.error}")
        return result.error

    def require_classification(self, revision: str, expected: str) -> RevisionVerdict:
        verdict = self._require_verdict(revision)
        if verdict.classification.value != expected:
            raise RehearsalFailed(f"revision {revision} is {verdict.classification.value} "
                                  f"({verdict.detail()}), expected {expected}")
        return verdict

    def require_evidence(self, revision: str, text: str) -> None:
        verdict = self._require_verdict(revision)
        if text.lower() not in verdict.detail().lower():
            raise RehearsalFailed(f"the check of {revision} does not mention {text!r}: {verdict.detail()}")

    def require_expand_contract(self, revision: str, needed: bool) -> None:
        verdict = self._require_verdict(revision)
        if verdict.needs_expand_contract != needed:
            found = "; ".join(h.line() for h in verdict.hazards) or "no hazard found"
            raise RehearsalFailed(f"revision {revision} {'does not need' if needed else 'needs'} "
                                  f"expand/contract, contrary to the expectation ({found})")

    def _require_verdict(self, revision: str) -> RevisionVerdict:
        if self.check is None:
            raise RehearsalFailed("no reversibility check was run", fix="add a step that runs the check")
        try:
            return self.check.verdict(revision)
        except KeyError:
            raise RehearsalFailed(f"the check did not cover revision {revision}") from None

    def require_verified(self) -> None:
        self._require_rollback().require_ok()

    def _require_rollback(self) -> DowngradeResult:
        if self.rollback is None:
            raise RehearsalFailed("no rollback was run", fix="add a step that rolls the migration back")
        return self.rollback
