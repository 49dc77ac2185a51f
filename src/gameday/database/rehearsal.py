"""A backup rehearsal, one act at a time, for scenarios and for the CLI gate.

    with BackupRehearsal(source_dsn, journal=journal) as rehearsal:
        rehearsal.snapshot("1.4.0")
        rehearsal.restore()
        rehearsal.require_matches_snapshot()

Each ``require_*`` raises RehearsalFailed with what differed; each figure goes to the
journal, with its target when the scenario states one.  The restore creates the roles the
backup needs first (captured with the snapshot, or a ``pg_dumpall --roles-only`` file);
a backup needing roles nobody supplied is bad input (ConfigError), named before restoring.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from gameday.database import checksums
from gameday.database.checksums import DatabaseState
from gameday.database.dsn import Dsn
from gameday.database.local import SUPERUSER, LocalPostgres
from gameday.database.snapshot import (
    Restore,
    RestoreFailed,
    Snapshot,
    capture_source,
    connect_source,
    create_roles,
    restore_snapshot,
    roles_needed,
    server_roles,
    take_snapshot,
)
from gameday.database.verify import DataLoss, Verification, measure_data_loss, verify_restored
from gameday.errors import ConfigError, GameDayError, RehearsalFailed
from gameday.journal import Journal
from gameday.lifecycle import temp_dir


class BackupRehearsal:
    def __init__(self, source: Dsn, *, journal: Journal | None = None, snapshot_dir: Path | None = None,
                 time_columns: dict[str, str] | None = None, scratch: Callable[[str], Any] | None = None) -> None:
        """``scratch(database)``: an unstarted server to restore into (``.start()``, ``.dsn``, ``.stop()``);
        by default a local Postgres; a container source restores into a container of the same image."""
        self.source = source
        self.scratch_server = scratch or (lambda name: LocalPostgres("scratch", database=name, journal=journal))
        self.journal = journal
        self.snapshot_dir = snapshot_dir
        self.time_columns = dict(time_columns or {})
        self.taken: Snapshot | None = None
        self.restored: Restore | None = None
        self.verification = Verification()
        self.loss: DataLoss | None = None
        self.restore_error: RehearsalFailed | None = None
        self._scratch: Any = None
        self._source_before: DatabaseState | None = None

    # -- acts -----------------------------------------------------------------
    def snapshot(self, release: str, *, method: str = "logical") -> Snapshot:
        """``method``: logical (pg_dump, the default) or physical (pg_basebackup of the whole server)."""
        where = self.snapshot_dir or temp_dir("snapshots")
        if method == "physical":
            from gameday.database.physical import take_base_backup

            self.taken = take_base_backup(self.source, where, release=release, journal=self.journal)
        elif method == "logical":
            self.taken = take_snapshot(self.source, where, release=release, journal=self.journal)
        else:
            raise ConfigError(f"snapshot method {method!r} is not one", fix="use logical (pg_dump) or physical "
                                                                           "(pg_basebackup)")
        # The snapshot's own state is the source as it was: "untouched" is measured against it.
        self._source_before = self.taken.state
        return self.taken

    def use_backup(self, path: Path) -> Snapshot:
        self.taken = Snapshot.open(path)
        return self.taken

    def restore(self, *, expect: dict[str, int] | None = None, smoke: list[str] | None = None,
                no_owner: bool = False, globals_file: Path | None = None) -> None:
        """Restore into a fresh scratch server and verify; a failure is kept, not raised.

        Unless ``no_owner``, the roles the backup needs are created first, from ``globals_file``
        (pg_dumpall --roles-only output) or else the roles the snapshot captured.  Roles still
        missing raise ConfigError naming them, before anything is restored."""
        if self.taken is None:
            raise RehearsalFailed("no snapshot to restore", fix="take a snapshot first")
        self.stop_scratch()
        if self.taken.format == "physical":
            self._restore_physical(expect=expect, smoke=smoke)
            return
        roles_file = None if no_owner else (globals_file or self.taken.globals)
        needed = None if no_owner else roles_needed(self.taken.path)  # None: unreadable; the restore says why
        if needed and roles_file is None:
            self._require_roles(needed, set(), None)  # a fresh scratch server has only its superuser
        self._scratch = self.scratch_server(self.source.dbname or "restored")
        self._scratch.start()
        target = Dsn.parse(self._scratch.dsn, use_env=False)
        if roles_file is not None:
            create_roles(target.with_database("postgres"), roles_file, journal=self.journal)
            if needed:
                self._require_roles(needed, server_roles(target), roles_file)
        try:
            self.restored = restore_snapshot(self.taken, target, journal=self.journal, no_owner=no_owner)
        except RehearsalFailed as exc:
            self._failed(exc)
            return
        self._verify(target, expect=expect, smoke=smoke)

    def _failed(self, exc: RehearsalFailed) -> None:
        """A restore that did not happen, or whose copy cannot be read: kept (not raised) and journalled."""
        self.restore_error = exc
        if self.journal is not None:
            self.journal.event("restore-failed", exc.one_line())

    def _verify(self, target: Dsn, *, expect: dict[str, int] | None, smoke: list[str] | None) -> None:
        """The restored copy against the snapshot's state (or, for a foreign backup, the source's rows now),
        then what the source holds that the copy lacks (RPO)."""
        assert self.taken is not None
        source_rows_now = self.source_row_counts() if self.taken.state is None else None
        self.verification = verify_restored(target, source_state=self.taken.state, expect=expect, smoke=smoke,
                                            source_rows_now=source_rows_now, journal=self.journal)
        if self.verification.restored is not None:
            self.loss = measure_data_loss(self.source, self.verification.restored, taken_at=self.taken.taken_at,
                                          time_columns=self.time_columns, journal=self.journal)

    def _restore_physical(self, *, expect: dict[str, int] | None, smoke: list[str] | None) -> None:
        """A scratch server started on a copy of the base backup (its own roles come with it); the
        restore is the copy, the start and the WAL replay, until it accepts connections."""
        assert self.taken is not None
        began = time.monotonic()
        self._scratch = LocalPostgres("scratch", database=self.source.dbname or "postgres", journal=self.journal,
                                      from_backup=self.taken.path, superuser=self.source.user or SUPERUSER)
        try:
            self._scratch.start()
        except (GameDayError, OSError, subprocess.SubprocessError) as exc:
            self._failed(RestoreFailed(f"the base backup {self.taken.path} did not start as a server: "
                                       f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
            return
        duration = time.monotonic() - began
        target = Dsn.parse(self._scratch.dsn, use_env=False)
        self.restored = Restore(duration_s=duration, target=target.redacted())
        if self.journal is not None:
            self.journal.measure("restore duration (RTO)", duration, "s",
                                 detail="copy of the base backup, server start and WAL replay until it accepts connections")
        try:
            self._verify(target, expect=expect, smoke=smoke)
        except psycopg.Error as exc:  # a damaged copy starts, then fails when its pages are read
            self._failed(RestoreFailed(f"the copy of the base backup {self.taken.path} started but cannot be "
                                       f"read: {str(exc).strip().splitlines()[0]}"))

    def source_state(self) -> DatabaseState:
        return capture_source(self.source)

    def source_row_counts(self) -> dict[str, int]:
        with connect_source(self.source) as conn:
            conn.execute("BEGIN READ ONLY")
            return checksums.row_counts(conn, checksums.user_tables(conn))

    @property
    def scratch_dsn(self) -> str:
        if self._scratch is None:
            raise RehearsalFailed("nothing was restored", fix="restore the snapshot first")
        return self._scratch.dsn

    # -- checks ---------------------------------------------------------------
    def require_restored(self) -> Restore:
        if self.restore_error is not None:
            raise self.restore_error
        if self.restored is None:
            raise RehearsalFailed("the snapshot was not restored", fix="add a restore step")
        return self.restored

    def require_restore_within(self, seconds: float) -> None:
        restored = self.require_restored()
        self._target("restore time (RTO)", restored.duration_s, "s", seconds)
        if restored.duration_s > seconds:
            raise RehearsalFailed(f"restore took {restored.duration_s:.1f} s, the target is {seconds:g} s")

    def require_matches_snapshot(self) -> None:
        self.require_restored()
        table_checks = [c for c in self.verification.checks if c.name.startswith("table ")]
        if not table_checks:
            raise RehearsalFailed("the snapshot recorded no tables to compare")
        failed = [c.detail for c in table_checks if not c.ok]
        if failed:
            raise RehearsalFailed("restored copy differs from the snapshot: " + "; ".join(failed))

    def require_rows(self, table: str, rows: int) -> None:
        self.require_restored()
        with psycopg.connect(self.scratch_dsn, connect_timeout=10) as conn:
            got = checksums.row_counts(conn, [checksums.qualify(table)])[checksums.qualify(table)]
        if self.journal is not None:
            self.journal.measure(f"restored rows in {table}", got, "rows", target=rows, bound="min")
        if got != rows:
            raise RehearsalFailed(f"table {table} has {got} rows after restore, expected {rows} ({rows - got} missing)")

    def require_lost_rows(self, rows: int) -> None:
        loss = self._require_loss()
        if loss.rows != rows:
            raise RehearsalFailed(f"the restore lost {loss.rows} rows written after the snapshot, expected {rows}")

    def require_loss_window_within(self, seconds: float) -> None:
        loss = self._require_loss()
        self._target("data loss window (RPO)", loss.seconds, "s", seconds)
        if loss.seconds > seconds:
            raise RehearsalFailed(f"the restore loses {loss.seconds:.1f} s of writes, the target is {seconds:g} s")

    def require_restore_failed(self, reason_contains: str = "") -> str:
        if self.restore_error is None:
            raise RehearsalFailed("the damaged backup restored without error: the restore check would miss it")
        message = self.restore_error.one_line()
        if reason_contains and reason_contains.lower() not in message.lower():
            raise RehearsalFailed(f"restore failed for another reason than {reason_contains!r}: {message}")
        return message

    def require_source_untouched(self) -> None:
        if self._source_before is None:
            raise RehearsalFailed("the source was never recorded", fix="take a snapshot first")
        now = self.source_state()
        if now.tables != self._source_before.tables:
            changed = [t for t in set(now.tables) | set(self._source_before.tables)
                       if now.tables.get(t) != self._source_before.tables.get(t)]
            raise RehearsalFailed(f"the source database changed during the rehearsal: {', '.join(sorted(changed))}")

    # -- housekeeping ----------------------------------------------------------
    def _require_roles(self, needed: set[str], present: set[str], roles_file: Path | None) -> None:
        missing = sorted(r for r in needed - present if r != SUPERUSER and not r.startswith("pg_"))
        if not missing:
            return
        assert self.taken is not None
        what = "the snapshot" if self.taken.state is not None else f"backup {self.taken.path}"
        if roles_file is not None:
            why = f"; {roles_file} does not create them"
        elif self.taken.roles_note:
            why = f"; the source's roles were not captured: {self.taken.roles_note}"
        else:
            why = ""
        if self.journal is not None:
            self.journal.event("roles", f"the backup needs roles nobody supplied: {', '.join(missing)}",
                               missing=missing)
        raise ConfigError(f"{what} needs roles the scratch server lacks: {', '.join(missing)}{why}",
                          fix="pass --globals FILE (pg_dumpall --roles-only --no-role-passwords) or --no-owner")

    def _require_loss(self) -> DataLoss:
        self.require_restored()
        if self.loss is None:
            raise RehearsalFailed("data loss was not measured")
        return self.loss

    def _target(self, name: str, value: float, unit: str, target: float) -> None:
        if self.journal is not None:
            self.journal.measure(name, value, unit, target=target)

    def stop_scratch(self) -> None:
        if self._scratch is not None:
            self._scratch.stop()
            self._scratch = None

    def __enter__(self) -> BackupRehearsal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_scratch()
