"""Migrations that provably roll back: a measured reversibility proof for every revision.

For each revision R (with parent P), in a fresh scratch database of its own:

1. upgrade to P and seed every table with N generated rows (every column holds data);
2. record the schema (catalog) and data checksums (per table and per column);
3. upgrade to R, record the schema again, and probe the previous release's queries;
4. downgrade to P, record schema and checksums, and compare them with step 2.

Classification — measured, never looked up:

* ``irreversible``  the downgrade raised (the error is kept, in one line);
* ``schema-drift``  the downgrade ran but the schema differs from P's (listed);
* ``lossy``         the schema is P's again but data differs (the columns are named);
* ``reversible``    schema and every checksum are equal again;
* ``upgrade-failed`` the upgrade itself failed on seeded data (nothing to roll back).

The round trip proves that data which existed *before* the upgrade survives it.  Data
written into R's new columns after the upgrade is necessarily dropped by a downgrade
that removes those columns; that is not counted as loss.

"Needs expand/contract" is a separate flag about the upgrade, not the downgrade: it
is raised when the release before R could not keep running against R's schema, which
is exactly the window a rollback of the application (not the database) lands in.  It is
detected from the upgrade's own schema diff (table or column dropped, column retyped,
column made NOT NULL, NOT NULL column added without a default, a drop+add that looks
like a rename) and confirmed dynamically by replaying the previous release's reads
(SELECT of P's columns) and writes (INSERT of a row with P's columns) against R, inside
a transaction that is rolled back.  So 0004 (add currency, backfill, NOT NULL) is
``reversible`` — the round trip gives P's schema and data back — yet flagged: the
previous release's INSERTs fail as soon as it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from psycopg import sql

from gameday import settings
from gameday.database.dsn import Dsn
from gameday.database.migrations import (
    MigrationFailed,
    MigrationProject,
    ScratchDatabases,
    check_connection,
    current_revision,
)
from gameday.database.migrations_catalog import (
    SchemaDiff,
    SchemaSnapshot,
    connect,
    data_snapshot,
    diff_data,
    diff_schema,
    qualified,
    schema_snapshot,
)
from gameday.database.migrations_seed import insert_statement, seed_database
from gameday.journal import Journal

DEFAULT_SEED_ROWS = settings.get_int("migrations-seed-rows")


class Classification(StrEnum):
    REVERSIBLE = "reversible"
    LOSSY = "lossy"
    SCHEMA_DRIFT = "schema-drift"
    IRREVERSIBLE = "irreversible"
    UPGRADE_FAILED = "upgrade-failed"


@dataclass(frozen=True)
class Hazard:
    """Something in an upgrade that the previous release cannot live with."""

    kind: str  # drop-table, drop-column, retype, set-not-null, add-not-null, rename, old-reader, old-writer
    subject: str  # table or table.column
    detail: str
    source: str = "schema"  # "schema": from the upgrade's schema diff; "probe": a replayed query failed

    def line(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}"


@dataclass
class RevisionVerdict:
    revision: str
    down_revision: str | None
    message: str
    classification: Classification
    lossy_columns: list[str] = field(default_factory=list)
    schema_drift: list[str] = field(default_factory=list)
    error: str | None = None
    hazards: list[Hazard] = field(default_factory=list)
    upgrade_changes: list[str] = field(default_factory=list)
    rows_seeded: dict[str, int] = field(default_factory=dict)
    upgrade_s: float | None = None
    downgrade_s: float | None = None
    total_s: float = 0.0

    @property
    def reversible(self) -> bool:
        return self.classification is Classification.REVERSIBLE

    @property
    def needs_expand_contract(self) -> bool:
        return bool(self.hazards)

    def detail(self) -> str:
        by_class = {
            Classification.LOSSY: lambda: "data lost in " + ", ".join(self.lossy_columns),
            Classification.SCHEMA_DRIFT: lambda: "; ".join(self.schema_drift),
            Classification.IRREVERSIBLE: lambda: self.error or "",
            Classification.UPGRADE_FAILED: lambda: self.error or "",
            Classification.REVERSIBLE: lambda: "schema and data equal after the round trip",
        }
        return by_class[self.classification]()


@dataclass
class MigrationCheck:
    script_location: str
    server: str  # redacted
    rows: int
    verdicts: list[RevisionVerdict]
    source_revision: str | None = None

    def verdict(self, revision: str) -> RevisionVerdict:
        for item in self.verdicts:
            if item.revision == revision:
                return item
        raise KeyError(revision)

    @property
    def not_reversible(self) -> list[RevisionVerdict]:
        return [v for v in self.verdicts if not v.reversible]


# -- expand/contract hazards from the upgrade's schema diff (a registry of rules) ------------------

HazardRule = Callable[[SchemaDiff], Iterator[Hazard]]


def _dropped_tables(diff: SchemaDiff) -> Iterator[Hazard]:
    for table in diff.tables_dropped:
        yield Hazard("drop-table", table, "the previous release still reads and writes it")


def _renames(diff: SchemaDiff) -> dict[tuple[str, str], str]:
    """(table, dropped column) -> added column of the same type: what a rename looks like in a diff."""
    pairs: dict[tuple[str, str], str] = {}
    taken: set[tuple[str, str]] = set()
    for table, old, spec in diff.columns_dropped:
        for new_table, new, new_spec in diff.columns_added:
            if new_table == table and new_spec.type == spec.type and (table, new) not in taken:
                pairs[(table, old)] = new
                taken.add((table, new))
                break
    return pairs


def _dropped_columns(diff: SchemaDiff) -> Iterator[Hazard]:
    renamed = _renames(diff)
    for table, column, _ in diff.columns_dropped:
        if (table, column) not in renamed:
            yield Hazard("drop-column", f"{table}.{column}", "the previous release still reads it")


def _renamed_columns(diff: SchemaDiff) -> Iterator[Hazard]:
    for (table, old), new in _renames(diff).items():
        yield Hazard("rename", f"{table}.{old}", f"looks renamed to {new}: the previous release still uses {old}")


def _retyped_columns(diff: SchemaDiff) -> Iterator[Hazard]:
    for table, column, before, after in diff.columns_changed:
        if before.type != after.type:
            yield Hazard("retype", f"{table}.{column}", f"{before.type} -> {after.type} rewrites the table")


def _not_null_existing(diff: SchemaDiff) -> Iterator[Hazard]:
    for table, column, before, after in diff.columns_changed:
        if before.nullable and not after.nullable:
            yield Hazard("set-not-null", f"{table}.{column}", "writers that leave it empty fail")


def _not_null_added(diff: SchemaDiff) -> Iterator[Hazard]:
    renamed_to = {(table, new) for (table, _), new in _renames(diff).items()}
    for table, column, spec in diff.columns_added:
        if (table, column) not in renamed_to and not spec.nullable and spec.default is None and not spec.identity and not spec.generated:
            yield Hazard("add-not-null", f"{table}.{column}",
                         "NOT NULL without a default: the previous release's INSERTs fail")


HAZARD_RULES: list[HazardRule] = [
    _dropped_tables, _dropped_columns, _renamed_columns, _retyped_columns, _not_null_existing, _not_null_added,
]


def schema_hazards(diff: SchemaDiff) -> list[Hazard]:
    return [hazard for rule in HAZARD_RULES for hazard in rule(diff)]


def probe_previous_release(dsn: str, previous: SchemaSnapshot, rows: int) -> list[Hazard]:
    """Replay the previous release's reads and writes against the upgraded schema (rolled back)."""
    hazards: list[Hazard] = []
    with connect(dsn) as conn, conn.transaction(force_rollback=True):
        for table, spec in previous.tables.items():
            columns = list(spec.columns)
            probes = {
                "old-reader": sql.SQL("SELECT {} FROM {} LIMIT 1").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)), qualified(table)),
                "old-writer": insert_statement(table, spec, rows + 1, rows + 1, columns),
            }
            for kind, statement in probes.items():
                try:
                    with conn.transaction():  # a savepoint: one failure does not hide the next
                        conn.execute(statement)
                except Exception as exc:  # noqa: BLE001 - any failure is the finding
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    hazards.append(Hazard(kind, table, first, source="probe"))
    return hazards


# -- the proof --------------------------------------------------------------------------------------


def check_revision(project: MigrationProject, revision: str, scratch: ScratchDatabases, *,
                   rows: int = DEFAULT_SEED_ROWS, journal: Journal | None = None) -> RevisionVerdict:
    """Prove (or disprove) that ``revision`` rolls back, in a scratch database of its own."""
    revision = project.resolve(revision) or ""
    parent = project.previous(revision)
    message = next(r.message for r in project.history() if r.revision == revision)
    began = time.monotonic()
    dsn = scratch.create(f"r{revision}")
    verdict = RevisionVerdict(revision, parent, message, Classification.REVERSIBLE)
    try:
        _round_trip(project, dsn, verdict, rows)
    finally:
        scratch.drop(dsn)
        verdict.total_s = time.monotonic() - began
    _record(verdict, journal)
    return verdict


def _round_trip(project: MigrationProject, dsn: str, verdict: RevisionVerdict, rows: int) -> None:
    revision, parent = verdict.revision, verdict.down_revision
    if parent is not None:
        project.upgrade(dsn, parent)
        verdict.rows_seeded = seed_database(dsn, rows)
    schema_before = schema_snapshot(dsn)
    data_before = data_snapshot(dsn, schema_before)
    try:
        verdict.upgrade_s = project.upgrade(dsn, revision)
    except MigrationFailed as failed:
        verdict.classification, verdict.error = Classification.UPGRADE_FAILED, failed.message
        return
    upgrade_diff = diff_schema(schema_before, schema_snapshot(dsn))
    verdict.upgrade_changes = upgrade_diff.lines()
    verdict.hazards = schema_hazards(upgrade_diff) + probe_previous_release(dsn, schema_before, rows)
    try:
        verdict.downgrade_s = project.downgrade(dsn, parent)
    except MigrationFailed as failed:
        verdict.classification, verdict.error = Classification.IRREVERSIBLE, failed.message
        return
    schema_after = schema_snapshot(dsn)
    drift = diff_schema(schema_before, schema_after)
    landed = current_revision(dsn)
    if landed != parent:
        drift.other.append(f"alembic_version is {landed}, expected {parent or 'base'}")
    if not drift.empty:
        verdict.classification, verdict.schema_drift = Classification.SCHEMA_DRIFT, drift.lines()
        return
    data = diff_data(data_before, data_snapshot(dsn, schema_after))
    if not data.empty:
        verdict.classification = Classification.LOSSY
        verdict.lossy_columns = data.columns_changed + [f"{t} (rows {a} -> {b})" for t, (a, b) in data.rows_changed.items()]


def _record(verdict: RevisionVerdict, journal: Journal | None) -> None:
    if journal is None:
        return
    for step, seconds in (("upgrade", verdict.upgrade_s), ("downgrade", verdict.downgrade_s)):
        if seconds is not None:
            journal.measure(f"migration {verdict.revision} {step}", seconds, "s")
    journal.measure(f"migration {verdict.revision} round trip", verdict.total_s, "s",
                    detail=f"{verdict.classification.value}: {verdict.detail()}")
    journal.event(
        "migration-verdict",
        f"{verdict.revision} {verdict.classification.value}: {verdict.detail()}",
        revision=verdict.revision,
        classification=verdict.classification.value,
        lossy_columns=verdict.lossy_columns,
        schema_drift=verdict.schema_drift,
        error=verdict.error,
        needs_expand_contract=verdict.needs_expand_contract,
        hazards=[h.line() for h in verdict.hazards],
        upgrade_changes=verdict.upgrade_changes,
        rows_seeded=verdict.rows_seeded,
    )


def check_migrations(script_location: Path | str | None = None, *, dsn: str | None = None,
                     revisions: list[str] | None = None, rows: int = DEFAULT_SEED_ROWS,
                     journal: Journal | None = None) -> MigrationCheck:
    """The reversibility proof for every revision (or ``revisions``) of an alembic project.

    Scratch databases are created on the server behind ``dsn`` (never written to: its
    current revision is only read) or, without ``dsn``, on a throwaway local Postgres."""
    project = MigrationProject(script_location)
    wanted = [project.resolve(r) or "" for r in revisions] if revisions else [r.revision for r in project.history()]
    if dsn is not None:
        check_connection(dsn)
        with ScratchDatabases(dsn) as scratch:
            verdicts = [check_revision(project, r, scratch, rows=rows, journal=journal) for r in wanted]
        return MigrationCheck(str(project.path), Dsn.parse(dsn).redacted(), rows, verdicts, current_revision(dsn))
    from gameday.database.local import LocalPostgres

    with LocalPostgres("migrations", journal=journal) as server, ScratchDatabases(server.dsn) as scratch:
        verdicts = [check_revision(project, r, scratch, rows=rows, journal=journal) for r in wanted]
        return MigrationCheck(str(project.path), f"local postgres {server.dsn}", rows, verdicts)


def render(check: MigrationCheck):  # type: ignore[no-untyped-def]
    """A rich Table of the verdicts, for the CLI."""
    from rich.table import Table

    colours = {Classification.REVERSIBLE: "green", Classification.LOSSY: "yellow"}
    table = Table(title=f"migrations in {check.script_location} ({check.rows} seeded rows per table)")
    for heading in ("revision", "change", "round trip", "detail", "expand/contract", "up s", "down s"):
        table.add_column(heading, justify="right" if heading.endswith(" s") else "left")
    for v in check.verdicts:
        colour = colours.get(v.classification, "red")
        table.add_row(
            v.revision,
            v.message,
            f"[{colour}]{v.classification.value}[/{colour}]",
            v.detail(),
            "\n".join(h.line() for h in v.hazards) or "-",
            f"{v.upgrade_s:.2f}" if v.upgrade_s is not None else "-",
            f"{v.downgrade_s:.2f}" if v.downgrade_s is not None else "-",
        )
    return table
