"""Pre-deploy snapshots (pg_dump) and their restore (pg_restore) into a scratch server.

The source is only ever read: a read-only repeatable-read transaction exports its
snapshot, pg_dump dumps exactly that snapshot (``--snapshot``), and the same
transaction computes the source's row counts and checksums, so "equal to the source
at snapshot time" is exact even while the application keeps writing.

Beside the dump the snapshot keeps the source's roles (``pg_dumpall --roles-only
--no-role-passwords``, ``roles.sql``): the restore creates them in the scratch server first,
so owners and grants restore as a real restore would.  A source that refuses to list
its roles still snapshots; the manifest then names the roles the archive needs.
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
ROLES_FILE = "roles.sql"
FORMATS = {"custom": "c", "directory": "d"}
_ROLES_TIMEOUT = 120.0


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
    globals: Path | None = None  # roles to create before the restore (pg_dumpall --roles-only output)
    roles_note: str | None = None  # why the source's roles were not captured
    roles_needed: list[str] | None = None  # what the archive needs, recorded when they were not captured

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
            "globals": self.globals.name if self.globals else None,
        }
        if self.roles_note is not None:
            data["roles_not_captured"] = self.roles_note
            data["roles_needed"] = self.roles_needed
        self.manifest_path.write_text(json.dumps(data, indent=2))

    @classmethod
    def open(cls, path: Path) -> Snapshot:
        """A snapshot made by gameday (its folder or manifest), or any pg_dump archive."""
        path = Path(path)
        manifest = path / MANIFEST if path.is_dir() else path.parent / MANIFEST
        if path.is_dir() and manifest.exists():
            try:
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
                    globals=path / data["globals"] if data.get("globals") else None,
                    roles_note=data.get("roles_not_captured"),
                    roles_needed=data.get("roles_needed"),
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                what = f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
                raise ConfigError(f"{manifest} is not a snapshot manifest gameday can read ({what})",
                                  fix=f"restore it from the snapshot's copy, or pass the dump inside {path} "
                                      "(verified against the source's rows now)") from None
        if not path.exists():
            raise ConfigError(f"backup {path} not found", fix="pass a pg_dump archive (custom or directory format)")
        if path.is_dir() and (path / "PG_VERSION").is_file():  # a base backup (pg_basebackup -Fp): physical
            stat_time = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(path.stat().st_mtime))
            return cls(path=path, release="unknown", format="physical", size_bytes=_size(path), duration_s=0.0,
                       taken_at=stat_time, source="(external base backup)", state=None)
        fmt = archive_format(path)
        stat_time = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(path.stat().st_mtime))
        return cls(path=path, release="unknown", format=fmt, size_bytes=_size(path), duration_s=0.0,
                   taken_at=stat_time, source="(external backup)", state=None)


def archive_format(path: Path) -> str:
    """What pg_restore will read ``path`` as ("custom", "directory", "tar"), or a ConfigError
    naming what it is instead: refused before a scratch server starts, never a failed restore."""
    fix = "pass a pg_dump archive: pg_dump -Fc (custom), -Fd (directory) or -Ft (tar)"
    if path.is_dir():
        if not (path / "toc.dat").is_file():
            raise ConfigError(f"backup {path} is a folder without toc.dat, not a pg_dump directory archive", fix=fix)
        return "directory"
    try:
        with path.open("rb") as src:
            head = src.read(512)
    except OSError as exc:
        raise ConfigError(f"backup {path} cannot be read: {exc.strerror}", fix=fix) from None
    if not head:
        raise ConfigError(f"backup {path} is empty", fix=fix)
    if head.startswith(b"PGDMP"):
        return "custom"
    if head[257:262] == b"ustar":
        return "tar"
    if head.lstrip().startswith((b"--", b"SET ", b"CREATE ", b"\\connect")):
        raise ConfigError(f"backup {path} is a plain SQL script, which pg_restore cannot read",
                          fix="restore it with psql yourself, or take the backup with pg_dump -Fc")
    if head[:2] == b"\x1f\x8b":
        raise ConfigError(f"backup {path} is gzip-compressed", fix="gunzip it first (a custom-format dump is compressed already)")
    raise ConfigError(f"backup {path} is not a pg_dump archive (it does not start with PGDMP)", fix=fix)


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


def capture_source(source: Dsn) -> DatabaseState:
    """Row counts and checksums of ``source``'s tables, all read in one snapshot (repeatable read)."""
    with connect_source(source) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return checksums.capture(conn)


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
    roles_path, roles_note = capture_roles(source, folder / ROLES_FILE, bindir=bindir)
    snapshot = Snapshot(
        path=dump_path, release=release, format=fmt, size_bytes=_size(dump_path),
        duration_s=time.monotonic() - began, taken_at=taken_at, source=source.redacted(), state=state,
        globals=roles_path, roles_note=roles_note,
    )
    if roles_note is not None:
        needed = roles_needed(dump_path, bindir=bindir)
        snapshot.roles_needed = sorted(needed) if needed is not None else None
    snapshot.save_manifest()
    if journal is not None:
        journal.measure("snapshot duration", snapshot.duration_s, "s", detail=f"pg_dump {fmt}, release {release}")
        journal.measure("snapshot size", snapshot.size_bytes / 1e6, "MB")
        journal.event("snapshot", f"release {release} snapshot of {len(state.tables)} tables, "
                      f"{state.total_rows} rows", path=str(dump_path), release=release, taken_at=taken_at)
        if roles_path is not None:
            captured = roles_in_globals(roles_path)
            journal.event("roles", f"captured {len(captured)} roles of the source, without passwords",
                          path=str(roles_path), roles=captured)
        else:
            journal.event("roles", f"roles not captured ({roles_note}); the archive needs: "
                          + (", ".join(snapshot.roles_needed or []) or "none"), roles_needed=snapshot.roles_needed)
    return snapshot


# -- roles ----------------------------------------------------------------------------------------------------
# Identifiers as pg_dump and pg_dumpall write them (fmtId): bare lower-case names or double-quoted ones.
_IDENT = r'(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)'
_PASSWORD = re.compile(r"\s*\b(?:ENCRYPTED\s+)?PASSWORD\s+(?:'(?:[^']|'')*'|NULL)", re.IGNORECASE)
# What in a restore script names a role: owners, grantees, default privileges, policies, grantors.
_ROLE_USES = [
    re.compile(rf"^ALTER .+ OWNER TO ({_IDENT});$"),
    re.compile(rf"^(?:ALTER DEFAULT PRIVILEGES .*)?GRANT .+ TO ({_IDENT})(?: WITH GRANT OPTION)?;$"),
    re.compile(rf"^(?:ALTER DEFAULT PRIVILEGES .*)?REVOKE .+ FROM ({_IDENT})(?: CASCADE)?;$"),
    re.compile(rf"^ALTER DEFAULT PRIVILEGES FOR ROLE ({_IDENT}) "),
    re.compile(rf"^SET SESSION AUTHORIZATION ({_IDENT});$"),
    re.compile(r"^SET SESSION AUTHORIZATION ('(?:[^']|'')+');$"),
    re.compile(rf"^CREATE USER MAPPING FOR ({_IDENT}) SERVER "),
]
_POLICY = re.compile(rf"^CREATE POLICY .+? TO ({_IDENT}(?:, {_IDENT})*)(?: USING \(| WITH CHECK \(|;$)")
_ROLE_STATEMENT = re.compile(rf"^(CREATE|ALTER)\s+(?:ROLE|USER|GROUP)\s+({_IDENT})", re.IGNORECASE)
_MEMBERSHIP = re.compile(rf"^GRANT\s+{_IDENT}(?:\s*,\s*{_IDENT})*\s+TO\s+", re.IGNORECASE)
_GRANTED_BY = re.compile(rf"\s+GRANTED BY\s+{_IDENT}", re.IGNORECASE)


def capture_roles(source: Dsn, dest: Path, *, bindir: Path | None = None) -> tuple[Path | None, str | None]:
    """``pg_dumpall --roles-only --no-role-passwords`` of the source's server into ``dest``.

    Returns (file, None), or (None, why) when the source refuses: that never fails a snapshot.
    It connects to the source's own database (``--database``), as the dump did."""
    argv = [_tool("pg_dumpall", bindir), "--roles-only", "--no-role-passwords", "--no-password",
            f"--database={source.dbname or ''}"]
    try:
        result = subprocess.run(argv, env=_client_env(source), capture_output=True, text=True,
                                timeout=_ROLES_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"pg_dumpall --roles-only did not finish in {_ROLES_TIMEOUT:g}s"
    except OSError as exc:
        return None, f"pg_dumpall could not run: {exc.strerror or exc}"
    if result.returncode != 0:
        return None, _pg_error(result.stderr)
    # --no-role-passwords leaves none; a password clause must never reach the disk all the same.
    dest.write_text(_PASSWORD.sub("", result.stdout))
    dest.chmod(0o600)
    return dest, None


def roles_needed(archive: Path, *, bindir: Path | None = None) -> set[str] | None:
    """The roles restoring ``archive`` with owners and privileges needs (None: the archive is unreadable;
    the restore itself will say why)."""
    argv = [_tool("pg_restore", bindir), "--schema-only", "--file=-", str(archive)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=_ROLES_TIMEOUT * 5,
                                stdin=subprocess.DEVNULL, env=_client_env(Dsn()))
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return roles_in_script(result.stdout)


def roles_in_script(script: str) -> set[str]:
    """Roles a pg_dump/pg_restore SQL script names as owner, grantee, grantor or policy target."""
    found: set[str] = set()
    for line in script.splitlines():
        if not line or line.startswith(("--", "\\")):
            continue
        for pattern in _ROLE_USES:
            match = pattern.match(line)
            if match:
                found.update(_unquote(name) for name in match.groups() if name)
        policy = _POLICY.match(line)
        if policy:
            found.update(_unquote(name.strip()) for name in _split_idents(policy.group(1)))
    found.discard("PUBLIC")
    return found


def roles_in_globals(path: Path) -> list[str]:
    """The roles a pg_dumpall --roles-only / --globals-only file creates."""
    names = []
    for statement in sql_statements(path.read_text()):
        match = _ROLE_STATEMENT.match(statement)
        if match and match.group(1).upper() == "CREATE":
            names.append(_unquote(match.group(2)))
    return names


@dataclass
class RolesCreated:
    created: list[str]
    problems: list[str]  # statements the scratch server refused (role name and error; never a password)


def create_roles(target: Dsn, globals_file: Path, *, journal: Journal | None = None) -> RolesCreated:
    """Create the roles of ``globals_file`` in the scratch server ``target``, before the restore.

    Only role statements run: CREATE/ALTER ROLE and role memberships.  Roles the server
    already has (its bootstrap superuser, built-in pg_* roles) are left as they are,
    attributes included; a statement the server refuses is noted, not fatal: the restore
    then fails on the role it really needs."""
    statements = sql_statements(_PASSWORD.sub("", globals_file.read_text()))  # the scratch copy needs none
    created: list[str] = []
    problems: list[str] = []
    with psycopg.connect(target.conninfo(), connect_timeout=10, autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
        for statement in statements:
            role_match = _ROLE_STATEMENT.match(statement)
            if role_match:
                verb, role = role_match.group(1).upper(), _unquote(role_match.group(2))
                if role in existing:
                    continue  # never touch a role the scratch server has: not its superuser's attributes
                error = _execute(conn, statement)
                if error is not None:
                    problems.append(f"{verb.lower()} role {role}: {error}")
                elif verb == "CREATE":
                    created.append(role)
            elif _MEMBERSHIP.match(statement):
                error = _execute(conn, statement)
                if error is not None and _GRANTED_BY.search(statement):
                    error = _execute(conn, _GRANTED_BY.sub("", statement))  # the grantor is not in the scratch server
                if error is not None:
                    problems.append(f"role membership {' '.join(statement.split()[1:4])}: {error}")
            # anything else (SET, tablespaces, databases) is not what restoring one database needs
    if journal is not None:
        message = (f"created {len(created)} role{'s' if len(created) != 1 else ''} in the scratch server: "
                   f"{', '.join(created)}" if created else "the scratch server already has every role the file names")
        journal.event("roles", message + (f"; {len(problems)} statements refused" if problems else ""),
                      roles=created, problems=problems, globals=globals_file.name)
    return RolesCreated(created, problems)


def server_roles(target: Dsn) -> set[str]:
    with psycopg.connect(target.conninfo(), connect_timeout=10) as conn:
        return {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}


def _execute(conn: psycopg.Connection[Any], statement: str) -> str | None:
    try:
        conn.execute(statement.encode())  # a statement from a file, not a query template
    except psycopg.Error as exc:
        return _first_line(str(exc))
    return None


def sql_statements(script: str) -> list[str]:
    """Split a pg_dumpall script into statements: quotes respected, comments and psql
    meta-commands (``\\restrict``, ``\\connect``) left out."""
    statements: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(script):
        ch = script[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif script.startswith("--", i) or (ch == "\\" and not "".join(current).strip()):
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
            continue
        elif ch == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(ch)
        i += 1
    return statements


def _split_idents(text: str) -> list[str]:
    return re.findall(_IDENT, text)


def _unquote(name: str) -> str:
    """A role name as pg_roles spells it, from an identifier ("Quoted" or bare) or a 'literal'."""
    for quote in "\"'":
        if name.startswith(quote) and name.endswith(quote) and len(name) >= 2:
            return name[1:-1].replace(quote * 2, quote)
    return name


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


_ERROR_LINE = re.compile(r"(?:pg_dump|pg_dumpall|pg_restore): error: (.*)")


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
        return "the backup needs roles the scratch server lacks: pass --globals FILE (pg_dumpall --roles-only " \
               "--no-role-passwords) or --no-owner"
    if str(archive) in stderr or any(sign in stderr for sign in _DAMAGED):
        return "the archive is corrupt or truncated: take a new backup and check how it is copied and stored"
    return "see the pg_restore error above"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "release"
