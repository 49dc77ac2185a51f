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
* ``upgrade-failed`` the upgrade itself failed on seeded data, though it runs on an empty
  database (the release would fail on a database with rows; nothing to roll back);
* ``not-checkable`` the revision could not be put to the test (its upgrade fails even on
  an empty database, the history cannot be upgraded to its parent, the check timed out):
  the reason is kept and the check goes on with the next revision.

Each revision starts from a copy (``CREATE DATABASE ... TEMPLATE``) of a database walked up
the history one revision at a time, so a 100-revision history costs 100 upgrades, not
5000, and one revision's failure never leaves the next one a dirty database.  A table the
seeder cannot fill is named in the verdict (its data is not compared); the schema is
still checked.  Schema drift and data loss are both reported when both happen.

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

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg import sql

from gameday import settings
from gameday.database.dsn import Dsn
from gameday.database.migrations.catalog import (
    USER_SCHEMAS,
    SchemaDiff,
    SchemaSnapshot,
    connect,
    data_snapshot,
    diff_data,
    diff_schema,
    qualified,
    schema_snapshot,
    table_name,
)
from gameday.database.migrations.project import (
    MigrationFailed,
    MigrationProject,
    ScratchDatabases,
    check_base_spec,
    check_connection,
    current_revision,
    one_line,
)
from gameday.database.migrations.seed import (
    ProbeInconclusive,
    ProbeRows,
    TablePlan,
    first_line,
    seed_database,
)
from gameday.errors import ConfigError
from gameday.journal import Journal

DEFAULT_SEED_ROWS = settings.get_int("migrations-seed-rows")


class Classification(StrEnum):
    REVERSIBLE = "reversible"
    LOSSY = "lossy"
    SCHEMA_DRIFT = "schema-drift"
    IRREVERSIBLE = "irreversible"
    UPGRADE_FAILED = "upgrade-failed"
    NOT_CHECKABLE = "not-checkable"


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
    unseeded: dict[str, str] = field(default_factory=dict)  # table -> why the seeder could not fill it
    probe_notes: list[str] = field(default_factory=list)  # probes that could not be built (not findings)
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
        lost = "data lost in " + ", ".join(self.lossy_columns)
        by_class = {
            Classification.LOSSY: lambda: lost,
            Classification.SCHEMA_DRIFT: lambda: "; ".join(self.schema_drift + ([lost] if self.lossy_columns else [])),
            Classification.IRREVERSIBLE: lambda: self.error or "",
            Classification.UPGRADE_FAILED: lambda: self.error or "",
            Classification.NOT_CHECKABLE: lambda: self.error or "",
            Classification.REVERSIBLE: lambda: "schema and data equal after the round trip",
        }
        text = by_class[self.classification]()
        if self.unseeded:
            text += ("; not seeded, so their data was not compared: "
                     + ", ".join(f"{t} ({why})" for t, why in self.unseeded.items()))
        return text


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
        """Every revision not proven reversible (not-checkable ones included: nothing was proven)."""
        return [v for v in self.verdicts if not v.reversible]

    @property
    def not_checkable(self) -> list[RevisionVerdict]:
        return [v for v in self.verdicts if v.classification is Classification.NOT_CHECKABLE]


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


_LENGTH = re.compile(r"^(character varying|character|numeric|bit varying)(?:\((\d+)(?:,(\d+))?\))?$")


def widens(before: str, after: str) -> bool:
    """True when every value of ``before`` is a value of ``after`` (varchar(50) -> varchar(255) or text,
    numeric(6,2) -> numeric(8,2), smallint -> integer -> bigint): the previous release keeps working."""
    if after == "text" and (before == "text" or before.startswith("character varying")):
        return True
    ints = ["smallint", "integer", "bigint"]
    if before in ints and after in ints:
        return ints.index(after) >= ints.index(before)
    old, new = _LENGTH.match(before), _LENGTH.match(after)
    if not old or not new or old.group(1) != new.group(1):
        return False
    if new.group(2) is None:
        return True  # unconstrained takes every value
    if old.group(2) is None:
        return False
    same_scale = (old.group(3) or "0") == (new.group(3) or "0")
    return int(new.group(2)) >= int(old.group(2)) and (old.group(1) != "numeric" or same_scale)


def _retyped_columns(diff: SchemaDiff) -> Iterator[Hazard]:
    for table, column, before, after in diff.columns_changed:
        if before.type != after.type and not widens(before.type, after.type):
            yield Hazard("retype", f"{table}.{column}",
                         f"{before.type} -> {after.type}: the previous release may read or write values "
                         f"{after.type} refuses")


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


def probe_previous_release(dsn: str, previous: SchemaSnapshot, rows: int,
                           plans: dict[str, TablePlan] | None = None) -> tuple[list[Hazard], list[str]]:
    """Replay the previous release's reads and writes against the upgraded schema (rolled back).

    The write is a fresh row built to satisfy the previous schema's keys and constraints
    (fresh keys, parents that exist), so a failure means the previous release really breaks.
    Returns the hazards found and the probes that could not be built (not findings)."""
    hazards: list[Hazard] = []
    notes: list[str] = []
    with connect(dsn) as conn, conn.transaction(force_rollback=True):
        fresh = ProbeRows(conn, previous, rows, plans or {})
        for table, spec in previous.tables.items():
            columns = list(spec.columns)
            reader = sql.SQL("SELECT {} FROM {} LIMIT 1").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), qualified(table))
            try:
                with conn.transaction():  # a savepoint: one failure does not hide the next
                    conn.execute(reader)
            except psycopg.Error as exc:
                hazards.append(Hazard("old-reader", table, first_line(exc), source="probe"))
            try:
                with conn.transaction():
                    fresh.insert(table, columns)
            except ProbeInconclusive as exc:
                notes.append(f"{table}: {exc}")
            except psycopg.Error as exc:
                hazards.append(Hazard("old-writer", table, first_line(exc), source="probe"))
    return hazards, notes


_RELFILENODES = f"""
SELECT n.nspname, c.relname, c.relfilenode FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND {USER_SCHEMAS}"""


def relfilenodes(dsn: str) -> dict[str, int]:
    """Each table's storage file: it changes exactly when PostgreSQL rewrites the table."""
    with connect(dsn) as conn:
        return {table_name(n, r): node for n, r, node in conn.execute(_RELFILENODES)}


# -- the proof --------------------------------------------------------------------------------------

# The first revision failing on an empty database with one of these means tables it expects
# were created outside alembic (by the application): a base schema is missing.
_MISSING_BASE = {"42P01": "relation", "3F000": "schema", "42704": "type"}


class _NotCheckable(Exception):
    """This revision cannot be put to the test; the message says why."""


class HistoryWalk:
    """A database walked up the history one revision at a time; every check starts from a copy of it.

    ``base_sql`` (a SQL file) or ``base`` (``module:function`` called with the URL, in the
    migrations' own process) create what the application creates before alembic takes over."""

    def __init__(self, project: MigrationProject, scratch: ScratchDatabases, *, base_sql: Path | None = None,
                 base: str | None = None) -> None:
        self.project, self.scratch = project, scratch
        self.base_sql, self.base = base_sql, base
        self.chain = [r.revision for r in project.history()]
        self.template: str | None = None
        self.at: str | None = None  # the revision the template is at (None: base)
        self.broken: str | None = None  # why the template cannot go further

    def _prepare(self) -> str:
        if self.template is None:
            self.template = self.scratch.create("walk")
            if self.base_sql is not None:
                apply_base_sql(self.template, self.base_sql)
            if self.base is not None:
                self.project.run_base(self.template, self.base)
        return self.template

    def move_to(self, revision: str | None) -> None:
        """Upgrade the template to ``revision``, one revision at a time; raise _NotCheckable if it cannot."""
        template = self._prepare()
        target = self._position(revision)
        while self._position(self.at) < target:
            if self.broken:
                raise _NotCheckable(self.broken)
            step = self.chain[self._position(self.at)]
            try:
                self.project.upgrade(template, step)
            except MigrationFailed as failed:
                self._missing_base(step, failed)
                self.broken = f"the history cannot be upgraded past {self.at or 'base'}: {failed.message}"
                raise _NotCheckable(f"its upgrade fails even on an empty database: {failed.message}"
                                    if step == revision else self.broken) from None
            self.at = step

    def _position(self, revision: str | None) -> int:
        """How many revisions of the chain a database at ``revision`` has applied."""
        return self.chain.index(revision) + 1 if revision is not None else 0

    def _missing_base(self, step: str, failed: MigrationFailed) -> None:
        if step == self.chain[0] and failed.sqlstate in _MISSING_BASE and not (self.base_sql or self.base):
            raise ConfigError(
                f"the first revision {step} fails on an empty database: {failed.message}",
                fix="the history expects tables the application creates itself: pass --base-sql FILE "
                    "(or --base module:function) to create them first")

    def copy(self, tag: str) -> str:
        template = self._prepare()
        return self.scratch.copy(template, tag)


def apply_base_sql(dsn: str, path: Path) -> None:
    """Run a base schema file (what the application creates before alembic takes over)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--base-sql {path}: {one_line(exc)}", fix="pass a readable .sql file") from None
    try:
        with connect(dsn) as conn:
            conn.execute(text.encode())
    except psycopg.Error as exc:
        raise ConfigError(f"--base-sql {path} fails on an empty database: {one_line(exc)}",
                          fix="the file must create the schema the first revision expects") from None


def check_revision(project: MigrationProject, revision: str, walk: HistoryWalk, *,
                   rows: int = DEFAULT_SEED_ROWS, journal: Journal | None = None) -> RevisionVerdict:
    """Prove (or disprove) that ``revision`` rolls back, in a scratch database of its own.

    A failure of this revision is its verdict; only bad input (ConfigError: a file that does
    not load, env.py using another database) stops the check."""
    revision = project.resolve(revision) or ""
    parent = project.previous(revision)
    message = next(r.message for r in project.history() if r.revision == revision)
    began = time.monotonic()
    verdict = RevisionVerdict(revision, parent, message, Classification.REVERSIBLE)
    try:
        walk.move_to(parent)
        dsn = walk.copy(f"r{revision}")
        try:
            _round_trip(project, dsn, verdict, rows)
        finally:
            walk.scratch.drop(dsn)
        if verdict.classification is Classification.UPGRADE_FAILED:
            walk.move_to(revision)  # fails too? then it was never about the seeded rows
    except _NotCheckable as reason:
        verdict.classification, verdict.error = Classification.NOT_CHECKABLE, str(reason)
    except psycopg.Error as exc:
        verdict.classification, verdict.error = Classification.NOT_CHECKABLE, f"the database refused: {one_line(exc)}"
    finally:
        verdict.total_s = time.monotonic() - began
    _record(verdict, journal)
    return verdict


def _round_trip(project: MigrationProject, dsn: str, verdict: RevisionVerdict, rows: int) -> None:
    revision, parent = verdict.revision, verdict.down_revision
    plans: dict[str, TablePlan] = {}
    if parent is not None:
        seeded = seed_database(dsn, rows)
        verdict.rows_seeded, verdict.unseeded, plans = seeded.rows, seeded.unseeded, seeded.plans
    schema_before = schema_snapshot(dsn)
    data_before = data_snapshot(dsn, schema_before)
    storage_before = relfilenodes(dsn)
    try:
        verdict.upgrade_s = project.upgrade(dsn, revision)
    except MigrationFailed as failed:
        verdict.classification, verdict.error = Classification.UPGRADE_FAILED, failed.message
        return
    upgrade_diff = diff_schema(schema_before, schema_snapshot(dsn))
    storage_after = relfilenodes(dsn)
    rewritten = sorted(t for t, node in storage_before.items() if storage_after.get(t, node) != node)
    verdict.upgrade_changes = upgrade_diff.lines() + [
        f"table {t} rewritten by the upgrade (measured: new storage file; PostgreSQL rewrites a table when a "
        "column's type changes unless the old type is binary-coercible to the new one, and holds an ACCESS "
        "EXCLUSIVE lock while it does)" for t in rewritten]
    probed, verdict.probe_notes = probe_previous_release(dsn, schema_before, rows, plans)
    verdict.hazards = schema_hazards(upgrade_diff) + probed
    try:
        verdict.downgrade_s = project.downgrade(dsn, parent)
    except MigrationFailed as failed:
        verdict.classification, verdict.error = Classification.IRREVERSIBLE, failed.message
        return
    schema_after = schema_snapshot(dsn)
    drift = diff_schema(schema_before, schema_after)
    data = diff_data(data_before, data_snapshot(dsn, schema_after))
    verdict.lossy_columns = data.columns_changed + [f"{t} (rows {a} -> {b})" for t, (a, b) in data.rows_changed.items()]
    if not drift.empty:
        verdict.classification, verdict.schema_drift = Classification.SCHEMA_DRIFT, drift.lines()
    elif verdict.lossy_columns:
        verdict.classification = Classification.LOSSY


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
        unseeded=verdict.unseeded,
        probe_notes=verdict.probe_notes,
    )


Progress = Callable[[int, int, RevisionVerdict], None]


def check_migrations(script_location: Path | str | None = None, *, dsn: str | None = None,
                     revisions: list[str] | None = None, rows: int = DEFAULT_SEED_ROWS,
                     journal: Journal | None = None, base_sql: Path | None = None, base: str | None = None,
                     url_env: Iterable[str] = (), progress: Progress | None = None) -> MigrationCheck:
    """The reversibility proof for every revision (or ``revisions``) of an alembic project.

    Scratch databases are created on the server behind ``dsn`` (never written to: its
    current revision is only read) or, without ``dsn``, on a throwaway local Postgres.
    ``progress(i, n, verdict)`` is called as each verdict is reached."""
    if base_sql is not None and not Path(base_sql).is_file():
        raise ConfigError(f"--base-sql {base_sql} does not exist", fix="pass the SQL file that creates the base schema")
    if rows < 1:
        raise ConfigError(f"seed rows must be at least 1, not {rows}", fix="pass --rows 1000")
    if base is not None:
        check_base_spec(base)
    with MigrationProject(script_location, url_env=url_env) as project:
        chain = [r.revision for r in project.history()]
        wanted = chain
        if revisions:
            wanted = sorted({project.resolve(r) or "" for r in revisions} - {""}, key=chain.index)
        if dsn is not None:
            check_connection(dsn)
            with ScratchDatabases(dsn) as scratch:
                verdicts = _check_all(project, wanted, HistoryWalk(project, scratch, base_sql=base_sql, base=base),
                                      rows, journal, progress)
            return MigrationCheck(str(project.path), Dsn.parse(dsn).redacted(), rows, verdicts, current_revision(dsn))
        from gameday.database.local import LocalPostgres

        with LocalPostgres("migrations", journal=journal) as server, ScratchDatabases(server.dsn) as scratch:
            verdicts = _check_all(project, wanted, HistoryWalk(project, scratch, base_sql=base_sql, base=base),
                                  rows, journal, progress)
            return MigrationCheck(str(project.path), f"local postgres {server.dsn}", rows, verdicts)


def _check_all(project: MigrationProject, wanted: list[str], walk: HistoryWalk, rows: int,
               journal: Journal | None, progress: Progress | None) -> list[RevisionVerdict]:
    verdicts = []
    for index, revision in enumerate(wanted, 1):
        verdicts.append(check_revision(project, revision, walk, rows=rows, journal=journal))
        if progress is not None:
            progress(index, len(wanted), verdicts[-1])
    return verdicts


_COLOURS = {Classification.REVERSIBLE: "green", Classification.LOSSY: "yellow", Classification.NOT_CHECKABLE: "magenta"}


def verdict_line(index: int, total: int, verdict: RevisionVerdict) -> str:
    """One line per verdict as it is reached (rich markup): ``[3/100] 0004 reversible (0.4 s) ...``."""
    colour = _COLOURS.get(verdict.classification, "red")
    width = len(str(total))
    flag = " · needs expand/contract" if verdict.needs_expand_contract else ""
    detail = "" if verdict.reversible and not verdict.unseeded else f": {verdict.detail()}"
    from rich.markup import escape

    return (escape(f"[{index:>{width}}/{total}] {verdict.revision} ") + f"[{colour}]{verdict.classification.value}"
            f"[/{colour}]" + escape(f" ({verdict.total_s:.2f} s){flag}{detail}"))


def render(check: MigrationCheck):  # type: ignore[no-untyped-def]
    """A rich Table of the verdicts, for the CLI."""
    from collections import Counter

    from rich.table import Table

    counts = Counter(v.classification.value for v in check.verdicts)
    flagged = sum(v.needs_expand_contract for v in check.verdicts)
    caption = (f"{len(check.verdicts)} revisions: " + ", ".join(f"{n} {c}" for c, n in counts.most_common())
               + f"; {flagged} need expand/contract")
    table = Table(title=f"migrations in {check.script_location} ({check.rows} seeded rows per table)",
                  caption=caption)
    for heading in ("revision", "change", "round trip", "detail", "expand/contract", "up s", "down s"):
        table.add_column(heading, justify="right" if heading.endswith(" s") else "left")
    for v in check.verdicts:
        colour = _COLOURS.get(v.classification, "red")
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
