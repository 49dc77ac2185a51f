"""The backup gate behind `gameday db verify-backup`: snapshot (or take a given backup),
restore it into a scratch server that is never the source, prove the copy usable, and
measure RTO and RPO.

    outcome = rehearse_backup(Dsn.parse(url), expect={"orders": 10000}, journal=journal)
    outcome.ok  # restored and verified

The roles the backup needs are created in the scratch server first (captured with the
snapshot, or ``globals_file`` for a backup taken elsewhere); ``no_owner`` restores without
owners and grants instead.  Roles nobody supplied raise ConfigError (bad input, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gameday.database.dsn import Dsn
from gameday.database.rehearsal import BackupRehearsal
from gameday.database.snapshot import Restore, Snapshot
from gameday.database.verify import DataLoss, Verification
from gameday.errors import RehearsalFailed
from gameday.journal import Journal


@dataclass
class BackupOutcome:
    snapshot: Snapshot | None
    restore: Restore | None
    verification: Verification
    loss: DataLoss | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.verification.ok

    def problems(self) -> list[str]:
        found = [self.error] if self.error else []
        return found + [c.detail for c in self.verification.failures]


def rehearse_backup(
    source: Dsn,
    *,
    release: str = "adhoc",
    backup: Path | None = None,
    expect: dict[str, int] | None = None,
    smoke: list[str] | None = None,
    time_columns: dict[str, str] | None = None,
    journal: Journal | None = None,
    snapshot_dir: Path | None = None,
    no_owner: bool = False,
    globals_file: Path | None = None,
    method: str = "logical",
) -> BackupOutcome:
    """Never raises for a failed rehearsal: the outcome says what failed and why (bad input,
    such as roles the backup needs and nobody supplied, raises ConfigError)."""
    with BackupRehearsal(source, journal=journal, snapshot_dir=snapshot_dir, time_columns=time_columns) as rehearsal:
        error: str | None = None
        try:
            if backup is not None:
                rehearsal.use_backup(backup)
            else:
                rehearsal.snapshot(release, method=method)
            rehearsal.restore(expect=expect, smoke=smoke, no_owner=no_owner, globals_file=globals_file)
            rehearsal.require_restored()
        except RehearsalFailed as exc:
            error = exc.one_line()
            if journal is not None:
                journal.event("backup-failed", error)
        return BackupOutcome(rehearsal.taken, rehearsal.restored, rehearsal.verification, rehearsal.loss, error)
