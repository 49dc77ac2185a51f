"""Pre-deploy snapshots (pg_dump) and their restore (pg_restore) into a scratch server.

The source is only ever read: a read-only repeatable-read transaction exports its
snapshot, pg_dump dumps exactly that snapshot (``--snapshot``), and the same
transaction computes the source's row counts and checksums, so "equal to the source
at snapshot time" is exact even while the application keeps writing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from gameday import settings
from gameday.database import checksums
from gameday.database.checksums import DatabaseState
from gameday.database.dsn import Dsn
from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Journal, utcnow

MANIFEST = "gameday-snapshot.json"
FORMATS = {"custom": "c", "directory": "d"}


class SourceUnreachable(RehearsalFailed):
    """The database to back up could not be reached: nothing was verified."""


class RestoreFailed(RehearsalFailed):
    """pg_restore could not restore the snapshot into the scratch server."""


@dataclass
class Snapshot:
    path: Path  # the pg_dump output (a file for custom format, a dir for directory format)
    release: str
    format: str
    size_bytes: int
    duration_s: float
    taken_at: str
    source: str  # redacted DSN
    state: DatabaseState | None  # the source at snapshot time (None for a foreign backup)

    @property
    def manifest_path(self) -> Path:
        return self.path.parent / MANIFEST

    def save_manifest(self) -> None:
        data = {
            "release": self.release,
            "format": self.format,
            "dump": self.path.name,
            "size_bytes": self.size_bytes,
            "duration_s": self.duration_s,
            "taken_at": self.taken_at,
            "source": self.source,
            "state": self.state.to_dict() if self.state else None,
        }
        self.manifest_path.write_text(json.dumps(data, indent=2))

    @classmethod
    def open(cls, path: Path) -> Snapshot:
        """A snapshot made by gameday (its folder or manifest), or any pg_dump archive."""
        path = Path(path)
        manifest = path / MANIFEST if path.is_dir() else path.parent / MANIFEST
        if path.is_dir() and manifest.exists():
            data = json.loads(manifest.read_text())
            return cls(
                path=path / data["dump"],
                release=data["release"],
                format=data["format"],
                size_bytes=data["size_bytes"],
                duration_s=data["duration_s"],
                taken_at=data["taken_at"],
                source=data["source"],
                state=DatabaseState.from_dict(data["state"]) if data.get("state") else None,
            )
        if not path.exists():
            raise ConfigError(f"backup {path} not found", fix="pass a pg_dump archive (custom or directory format)")
        fmt = "directory" if path.is_dir() else "custom"
        stat_time = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(path.stat().st_mtime))
        return cls(path=path, release="unknown", format=fmt, size_bytes=_size(path), duration_s=0.0,
                   taken_at=stat_time, source="(external backup)", state=None)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tool(name: str, bindir: Path | None) -> str:
    if bindir is not None:
        return str(bindir / name)
    from gameday.database.local import pg_bindir

    return str(pg_bindir() / name)


def connect_source(dsn: Dsn, *, what: str = "source database") -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn.conninfo(), connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = _first_line(str(exc))
        raise SourceUnreachable(
            f"cannot connect to {what} {dsn.redacted()}: {reason}",
            fix="check host, port, user, password and that the server is up",
        ) from None


def take_snapshot(
    source: Dsn,
    dest_root: Path,
    *,
    release: str,
    journal: Journal | None = None,
    fmt: str | None = None,
    jobs: int | None = None,
    bindir: Path | None = None,
) -> Snapshot:
    """Dump ``source`` into ``dest_root/<release>-<stamp>/`` and record what it held."""
    fmt = fmt or settings.get("dump-format")
    if fmt not in FORMATS:
        raise ConfigError(f"dump format {fmt!r} is not supported", fix="use custom or directory (GAMEDAY_DUMP_FORMAT)")
    jobs = jobs or settings.get_int("dump-jobs")
    folder = Path(dest_root) / f"{_safe(release)}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=False)
    dump_path = folder / ("dump" if fmt == "directory" else "dump.pgdump")
    began = time.monotonic()
    with connect_source(source) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        taken_at = utcnow()
        argv = [_tool("pg_dump", bindir), f"--format={FORMATS[fmt]}", f"--file={dump_path}",
                f"--snapshot={snapshot_id}", "--no-password"]
        if fmt == "directory" and jobs > 1:
            argv.append(f"--jobs={jobs}")
        dump = subprocess.Popen(argv + [source.dbname or ""], env=_client_env(source),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The checksums run in the exporting transaction while pg_dump reads the same snapshot.
        state = checksums.capture(conn)
        try:
            _, stderr = dump.communicate(timeout=settings.get_float("pg-start-timeout") * 120)
        except subprocess.TimeoutExpired:
            dump.kill()
            raise RehearsalFailed("pg_dump did not finish in time", fix="raise GAMEDAY_PG_START_TIMEOUT") from None
        conn.rollback()
    if dump.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RehearsalFailed(f"pg_dump of {source.redacted()} failed: {_pg_error(stderr)}",
                              fix="check the dump user's privileges on every table")
    snapshot = Snapshot(
        path=dump_path, release=release, format=fmt, size_bytes=_size(dump_path),
        duration_s=time.monotonic() - began, taken_at=taken_at, source=source.redacted(), state=state,
    )
    snapshot.save_manifest()
    if journal is not None:
        journal.measure("snapshot duration", snapshot.duration_s, "s", detail=f"pg_dump {fmt}, release {release}")
        journal.measure("snapshot size", snapshot.size_bytes / 1e6, "MB")
        journal.event("snapshot", f"release {release} snapshot of {len(state.tables)} tables, "
                      f"{state.total_rows} rows", path=str(dump_path), release=release, taken_at=taken_at)
    return snapshot


@dataclass
class Restore:
    duration_s: float
    target: str  # redacted DSN


def restore_snapshot(
    snapshot: Snapshot,
    target: Dsn,
    *,
    journal: Journal | None = None,
    jobs: int | None = None,
    bindir: Path | None = None,
    no_owner: bool = False,
    timeout: float = 3600,
) -> Restore:
    """pg_restore ``snapshot`` into the (empty) database ``target``; stop at the first error."""
    jobs = jobs or settings.get_int("dump-jobs")
    argv = [_tool("pg_restore", bindir), "--exit-on-error", "--no-password", f"--dbname={target.dbname}"]
    if jobs > 1:
        argv.append(f"--jobs={jobs}")
    if no_owner:
        argv += ["--no-owner", "--no-privileges"]
    began = time.monotonic()
    try:
        result = subprocess.run(argv + [str(snapshot.path)], env=_client_env(target), capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RestoreFailed(f"pg_restore of {snapshot.path} did not finish in {timeout:g}s") from None
    duration = time.monotonic() - began
    if result.returncode != 0:
        raise RestoreFailed(f"restore of {snapshot.path} failed: {_pg_error(result.stderr)}",
                            fix=_restore_fix(result.stderr, snapshot.path))
    if journal is not None:
        journal.measure("restore duration (RTO)", duration, "s", detail=f"pg_restore into {target.redacted()}")
    return Restore(duration_s=duration, target=target.redacted())


def _client_env(dsn: Dsn) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(dsn.libpq_env())  # the password travels in PGPASSWORD, never on a command line
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


_ERROR_LINE = re.compile(r"(?:pg_dump|pg_restore): error: (.*)")


def _pg_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [m.group(1) for m in map(_ERROR_LINE.match, lines) if m]
    detail = [line for line in lines if line.startswith(("ERROR:", "DETAIL:"))]
    text = errors[0] if errors else (lines[-1] if lines else "no output")
    if detail and detail[0] not in text:
        text += f" ({detail[0]})"
    return _first_line(text)


_DAMAGED = ("input file", "unexpected end of file", "uncompress", "toc.dat", "data file", "could not read")


def _restore_fix(stderr: str, archive: Path) -> str:
    if "role" in stderr and "does not exist" in stderr:
        return "the backup needs roles the scratch server lacks: restore globals first, or pass --no-owner"
    if str(archive) in stderr or any(sign in stderr for sign in _DAMAGED):
        return "the archive is corrupt or truncated: take a new backup and check how it is copied and stored"
    return "see the pg_restore error above"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "release"
