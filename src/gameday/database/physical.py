"""Physical snapshots: a base backup of the source's whole server (pg_basebackup), restored by
starting a scratch server on a copy of it.  There is no dump to parse and no index to rebuild,
so it runs at the speed of copying files.

    snapshot = take_base_backup(source, Path("snapshots"), release="1.4.0")    # format "physical"
    with LocalPostgres("scratch", database="app", from_backup=snapshot.path,
                       superuser=source.user) as scratch: ...

The source must accept a replication connection from the backup's user (REPLICATION, and a
``replication`` line in pg_hba.conf).  A rehearsal server gameday starts does.  The backup is
consistent as of its end.  The state it is verified against (row counts, checksums) is read
while the backup runs, in a snapshot taken just before it started.  The next transaction id is
read before and after: if a write happened meanwhile, the state is read again after the backup
ended, and the snapshot says the source was written during it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from gameday import settings
from gameday.database import checksums
from gameday.database.dsn import Dsn
from gameday.database.snapshot import (
    Snapshot,
    _client_env,
    _safe,
    _size,
    _tool,
    capture_source,
    connect_source,
)
from gameday.errors import RehearsalFailed
from gameday.journal import Journal, utcnow

FORMAT = "physical"
FIX = ("give the backup's user REPLICATION and a replication line in pg_hba.conf, or use the logical method "
       "(pg_dump)")


def _next_xid(conn: psycopg.Connection[Any]) -> str:
    return str(conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())").fetchone()[0])  # type: ignore[index]


def take_base_backup(source: Dsn, dest_root: Path, *, release: str, journal: Journal | None = None,
                     bindir: Path | None = None) -> Snapshot:
    """pg_basebackup of ``source``'s server into ``dest_root/<release>-<stamp>/base`` (plain format,
    WAL streamed alongside, fast checkpoint) and the state of ``source``'s database when it ended."""
    folder = Path(dest_root) / f"{_safe(release)}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=False)
    base = folder / "base"
    began = time.monotonic()
    argv = [_tool("pg_basebackup", bindir), "-D", str(base), "-Fp", "-X", "stream", "-c", "fast", "--no-password",
            "--no-sync"]
    with connect_source(source) as watch:
        # The state is read while the backup runs, in a snapshot taken before it started; the next
        # transaction id, read before and after, says whether anything was written meanwhile.
        watch.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        before = _next_xid(watch)
        backup = subprocess.Popen(argv, env=_client_env(source), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, stdin=subprocess.DEVNULL)
        state = checksums.capture(watch)
        try:
            _, stderr = backup.communicate(timeout=settings.get_float("pg-start-timeout") * 120)
        except subprocess.TimeoutExpired:
            backup.kill()
            backup.communicate()
            shutil.rmtree(folder, ignore_errors=True)
            raise RehearsalFailed("pg_basebackup did not finish in time", fix="raise GAMEDAY_PG_START_TIMEOUT") from None
        watch.rollback()
        if backup.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            said = next((line.split("error: ", 1)[1] for line in stderr.splitlines() if "error: " in line),
                        stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {backup.returncode}")
            raise RehearsalFailed(f"pg_basebackup of {source.redacted()} failed: {said}", fix=FIX)
        taken_at = utcnow()
        changed = _next_xid(watch) != before
    duration = time.monotonic() - began
    if changed:  # written during the backup: the copy holds the state at its end
        state = capture_source(source)
    snapshot = Snapshot(path=base, release=release, format=FORMAT, size_bytes=_size(base), duration_s=duration,
                        taken_at=taken_at, source=source.redacted(), state=state)
    snapshot.save_manifest()
    if journal is not None:
        journal.measure("snapshot duration", duration, "s",
                        detail=f"pg_basebackup of {source.redacted()} ({snapshot.size_bytes / 1e6:.0f} MB, WAL streamed)"
                               + ("; the source was written during the backup: verified against its state at the end"
                                  if changed else ""))
        journal.measure("snapshot size", snapshot.size_bytes / 1e6, "MB")
        journal.event("snapshot", f"base backup for release {release}: {base}", release=release, path=str(base),
                      size_bytes=snapshot.size_bytes, method=FORMAT, written_during_backup=changed)
    return snapshot
