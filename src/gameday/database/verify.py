"""Prove a restored copy is usable: the same rows and content as the source at snapshot
time, the row counts a scenario expects, smoke queries that answer, and what the
restore lost compared with the source now (RPO in rows and seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from gameday.database import checksums
from gameday.database.checksums import DatabaseState
from gameday.database.dsn import Dsn
from gameday.journal import Journal, parse_time


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)
    restored: DatabaseState | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


def verify_restored(
    restored: Dsn,
    *,
    source_state: DatabaseState | None,
    expect: dict[str, int] | None = None,
    smoke: list[str] | None = None,
    source_rows_now: dict[str, int] | None = None,
    journal: Journal | None = None,
) -> Verification:
    """Compare the restored database with the source's state at snapshot time.

    A backup gameday did not take has no recorded state; it is compared with the
    source's row counts now (``source_rows_now``): every table must be there and hold
    rows where the source does; fewer rows are what the backup's age costs (RPO).
    """
    result = Verification()
    with psycopg.connect(restored.conninfo(), connect_timeout=10) as conn:
        state = checksums.capture(conn, algorithm=source_state.algorithm if source_state is not None else None)
        result.restored = state
        if source_state is not None:
            _compare_tables(result, source_state, state)
        for table, rows in (expect or {}).items():
            name = checksums.qualify(table)
            got = state.tables.get(name)
            if got is None:
                result.add(f"expect {table}", False, f"table {name} is missing from the restored copy")
            else:
                diff = got.rows - rows
                result.add(
                    f"expect {table}", diff == 0,
                    f"{name}: {got.rows} rows restored, expected {rows}"
                    + ("" if diff == 0 else f" ({abs(diff)} {'missing' if diff < 0 else 'extra'})"),
                )
        if source_state is None and source_rows_now is not None:
            _compare_with_source_now(result, source_rows_now, state)
        for query in smoke or []:
            result.checks.append(_smoke(conn, query))
    if journal is not None:
        journal.measure("restored rows", state.total_rows, "rows")
        for check in result.checks:
            journal.event("verify", check.detail, check=check.name, ok=check.ok)
    return result


def _compare_tables(result: Verification, before: DatabaseState, after: DatabaseState) -> None:
    for name, want in before.tables.items():
        got = after.tables.get(name)
        if got is None:
            result.add(f"table {name}", False, f"{name} ({want.rows} rows at snapshot) is missing from the restored copy")
            continue
        if got.rows != want.rows:
            result.add(f"table {name}", False,
                       f"{name}: {got.rows} rows restored, {want.rows} at snapshot ({want.rows - got.rows} missing)"
                       if got.rows < want.rows else
                       f"{name}: {got.rows} rows restored, {want.rows} at snapshot ({got.rows - want.rows} extra)")
        elif got.checksum != want.checksum:
            result.add(f"table {name}", False, f"{name}: {got.rows} rows but content checksum differs from the snapshot")
        else:
            result.add(f"table {name}", True, f"{name}: {got.rows} rows, checksum equal")
    for name in sorted(set(after.tables) - set(before.tables)):
        result.add(f"table {name}", False, f"{name} is in the restored copy but was not in the source")


def _compare_with_source_now(result: Verification, source_rows: dict[str, int], after: DatabaseState) -> None:
    for name, rows in source_rows.items():
        got = after.tables.get(name)
        if got is None:
            result.add(f"table {name}", False, f"{name} ({rows} rows in the source) is missing from the restored copy")
        elif rows > 0 and got.rows == 0:
            result.add(f"table {name}", False, f"{name} was restored empty; the source holds {rows} rows")
        else:
            result.add(f"table {name}", True, f"{name}: {got.rows} rows restored ({rows} in the source now)")
    if not source_rows and not after.tables:
        result.add("tables", False, "the restored copy holds no tables")


def _smoke(conn: psycopg.Connection[Any], query: str) -> Check:
    try:
        row = conn.execute(sql.SQL(query)).fetchone()  # type: ignore[arg-type]
    except psycopg.Error as exc:
        conn.rollback()
        return Check(f"smoke {query}", False, f"smoke query failed: {str(exc).splitlines()[0]}")
    ok = row is not None and row[0] not in (None, False, 0)
    return Check(f"smoke {query}", ok, f"smoke query {'answered' if ok else 'returned nothing'}: {query}")


@dataclass
class DataLoss:
    rows_by_table: dict[str, int]
    seconds: float  # from the snapshot to the newest write the restore does not hold

    @property
    def rows(self) -> int:
        return sum(self.rows_by_table.values())


def measure_data_loss(
    source: Dsn,
    restored: DatabaseState,
    *,
    taken_at: str,
    time_columns: dict[str, str] | None = None,
    journal: Journal | None = None,
) -> DataLoss:
    """Rows the source holds now that the restored copy lacks (RPO).

    With a time column for a table (``{"orders": "created_at"}``) the seconds are exact:
    newest lost write minus snapshot time.  Without one they are the snapshot's age,
    the window in which any write would have been lost.
    """
    from gameday.database.snapshot import connect_source

    snapshot_time = parse_time(taken_at)
    newest_lost: datetime | None = None
    with connect_source(source) as conn:
        conn.execute("BEGIN READ ONLY")
        counts = checksums.row_counts(conn, list(restored.tables))
        for table, column in (time_columns or {}).items():
            schema, name = checksums.qualify(table).split(".", 1)
            query = sql.SQL("SELECT max({}) FROM {} WHERE {} > %s").format(
                sql.Identifier(column), sql.Identifier(schema, name), sql.Identifier(column))
            latest = conn.execute(query, (snapshot_time,)).fetchone()[0]  # type: ignore[index]
            if latest is not None and (newest_lost is None or latest > newest_lost):
                newest_lost = latest
        conn.rollback()
    lost = {t: max(0, counts[t] - restored.tables[t].rows) for t in counts}
    if sum(lost.values()) == 0:
        seconds = 0.0
    elif newest_lost is not None:
        seconds = (newest_lost - snapshot_time).total_seconds()
    else:
        seconds = (datetime.now(UTC) - snapshot_time).total_seconds()
    loss = DataLoss(rows_by_table=lost, seconds=max(0.0, seconds))
    if journal is not None:
        journal.measure("data lost (RPO rows)", loss.rows, "rows", detail=", ".join(f"{t}: {n}" for t, n in lost.items() if n))
        journal.measure("data lost (RPO window)", loss.seconds, "s")
    return loss
