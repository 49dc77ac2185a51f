"""The embedded default database: a throwaway PostgreSQL server from the installed binaries.

initdb and postgres refuse to run as root, so when gameday runs as root (CI) the server
runs as an unprivileged OS user (``GAMEDAY_PG_USER``, default ``postgres`` if present,
else ``nobody``); as a normal user it runs as that user.  Data lives in a temp dir,
the server listens on a free 127.0.0.1 port, and stop() removes everything.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from gameday import settings
from gameday.database.admin import recreate_database
from gameday.database.dsn import Dsn
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import (
    Provider,
    cancel_cleanup,
    forget_part,
    free_port,
    on_cleanup,
    spawn,
    stop_process,
    tail,
    temp_dir,
    traversable_by_others,
    wait_until,
)

SUPERUSER = "gameday"


def pg_bindir() -> Path:
    """Where initdb, pg_ctl, pg_dump and pg_restore live."""
    configured = settings.get("pg-bindir")
    candidates: list[Path] = [Path(configured)] if configured else []
    if not configured:
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0:
                candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.TimeoutExpired):
            pass
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise ConfigError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found",
        fix="install them (Debian: apt-get install postgresql-15) or set GAMEDAY_PG_BINDIR",
    )


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    wanted = settings.get("pg-user")
    for name in ([wanted] if wanted else ["postgres", "nobody"]):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ConfigError(
        f"running as root and no unprivileged user {wanted or 'postgres/nobody'} exists for Postgres",
        fix="create one or set GAMEDAY_PG_USER",
    )


class LocalPostgres(Provider):
    """``with LocalPostgres() as db: psycopg.connect(db.dsn)``"""

    name = "local-postgres"

    def __init__(
        self,
        label: str = "gameday",
        *,
        database: str = "gameday",
        journal: Journal | None = None,
        start_timeout: float | None = None,
        from_backup: Path | None = None,
        superuser: str = SUPERUSER,
    ) -> None:
        """``from_backup``: a base backup's data directory (pg_basebackup -Fp), copied and started as it
        is, with its own roles and databases (``superuser``: one of its roles) instead of initdb."""
        self.label = label
        self.database = database
        self.from_backup = Path(from_backup) if from_backup is not None else None
        self.superuser = superuser
        self.journal = journal
        self.start_timeout = start_timeout or settings.get_float("pg-start-timeout")
        self.port: int | None = None
        self.root: Path | None = None
        self._bindir: Path | None = None
        self._account: pwd.struct_passwd | None = None
        self._cleanup_handle: int | None = None
        self._server: subprocess.Popen[Any] | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> LocalPostgres:
        began = time.monotonic()
        self._bindir = pg_bindir()
        self._account = _server_account()
        self.root = temp_dir(f"pg-{self.label}", mode=0o755, base=self._temp_base())
        self._cleanup_handle = on_cleanup(self.stop)
        # The root stays ours but traversable (0755) so the server user reaches its data dir.
        for sub in ("data", "run", "log"):
            (self.root / sub).mkdir(mode=0o700)
            self._chown(self.root / sub)
        if self.from_backup is not None:
            self._copy_backup(self.from_backup)
        else:
            self._run([self._tool("initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
                       "--encoding=UTF8", "--locale=C", "--no-sync"], what="initdb")
        self.port = free_port()
        settings_ = {
            "listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": str(self.root / "run"),
            # a rehearsal copy: durability traded for speed
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_wal_size": "2GB",
            "shared_buffers": "128MB", "max_connections": "50",
        }
        argv = [self._tool("postgres"), "-D", str(self.datadir)]
        for key, value in settings_.items():
            argv += ["-c", f"{key}={value}"]
        # The postmaster is our child (not daemonized by pg_ctl), so it dies with us even on
        # SIGKILL, and its backends follow it; stale data dirs are swept at the next start.
        self._server = spawn(argv, log=self.logfile, env=self._server_env(), cwd=Path("/"), grace=20,
                             die_with_harness=True, part=f"postgres {self.label}", **self._account_kwargs())
        wait_until(self._accepts_connections, timeout=self.start_timeout, what=f"Postgres {self.label}",
                   logs=lambda: tail(self.logfile))
        if self.from_backup is None:
            self._create_database()
        if self.journal is not None:
            self.journal.measure(f"postgres {self.label} start", time.monotonic() - began, "s",
                                 detail="copy of the base backup, start and WAL replay" if self.from_backup else "")
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        root, self.root = self.root, None
        server, self._server = self._server, None
        forget_part(server)
        if server is not None and server.poll() is None:
            # SIGQUIT: immediate shutdown; the copy is thrown away, nothing to flush.
            with contextlib.suppress(ProcessLookupError):
                server.send_signal(signal.SIGQUIT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop_process(server, grace=0)
        shutil.rmtree(root, ignore_errors=True)
        if self._cleanup_handle is not None:
            cancel_cleanup(self._cleanup_handle)
            self._cleanup_handle = None

    def endpoints(self) -> dict[str, Any]:
        return {"dsn": self.dsn, "host": "127.0.0.1", "port": self.port, "database": self.database}

    # -- public ---------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "log" / "server.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        if self.port is None:
            raise EnvironmentNotReady(f"Postgres {self.label} is not started")
        return str(Dsn.build(host="127.0.0.1", port=self.port, user=self.superuser, dbname=database))

    def tool(self, name: str) -> str:
        """Path of a client tool (pg_dump, pg_restore, psql) matching this server's version."""
        return self._tool(name)

    # -- internals ---------------------------------------------------------
    def _tool(self, name: str) -> str:
        assert self._bindir is not None
        return str(self._bindir / name)

    def _chown(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _temp_base(self) -> Path | None:
        """The system temp dir, unless the server's own user could not reach a folder in it
        (TMPDIR inside a private home, say): then the shared /tmp."""
        base = Path(tempfile.gettempdir())
        if self._account is None or traversable_by_others(base):
            return None
        if traversable_by_others(Path("/tmp")):
            return Path("/tmp")
        raise ConfigError(f"the Postgres user {self._account.pw_name} cannot reach a folder in {base}",
                          fix="point TMPDIR at a folder every user can traverse")

    def _account_kwargs(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}

    @staticmethod
    def _server_env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _run(self, argv: list[str], *, what: str, timeout: float = 120) -> None:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self._server_env(),
                                    stdin=subprocess.DEVNULL, cwd="/", **self._account_kwargs())
        except subprocess.TimeoutExpired:
            raise EnvironmentNotReady(f"{what} for Postgres {self.label} did not finish in {timeout:g}s") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            log = tail(self.logfile, 3) if self.root is not None else ""
            raise EnvironmentNotReady(
                f"{what} for Postgres {self.label} failed: {detail[-1] if detail else result.returncode}"
                + (f"; log: {' | '.join(log.splitlines())}" if log else "")
            )

    def _accepts_connections(self) -> bool:
        import psycopg

        if self._server is not None and self._server.poll() is not None:
            raise EnvironmentNotReady(f"Postgres {self.label} exited with code {self._server.returncode}: "
                                      + " | ".join(tail(self.logfile, 3).splitlines()))
        try:
            with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _copy_backup(self, backup: Path) -> None:
        """The base backup's files into the data directory, owned by the server's user; a scratch copy
        trusts loopback (the source's pg_hba.conf may want passwords the copy has no use for)."""
        if not (backup / "PG_VERSION").is_file():
            raise ConfigError(f"{backup} is not a PostgreSQL data directory (no PG_VERSION)",
                              fix="pass the folder pg_basebackup -Fp wrote")
        copied = subprocess.run(["cp", "-a", "--", f"{backup}/.", str(self.datadir)], capture_output=True, text=True,
                                timeout=3600, stdin=subprocess.DEVNULL)
        if copied.returncode != 0:
            raise EnvironmentNotReady(f"copying the base backup {backup} failed: {copied.stderr.strip()[:200]}")
        for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal", "recovery.signal"):
            (self.datadir / leftover).unlink(missing_ok=True)
        (self.datadir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n"
                                                   "local replication all trust\nhost replication all 127.0.0.1/32 trust\n")
        if self._account is not None:  # root: the server's own user runs the copy
            subprocess.run(["chown", "-R", f"{self._account.pw_uid}:{self._account.pw_gid}", str(self.datadir)],
                           check=True, timeout=600, stdin=subprocess.DEVNULL)
        self.datadir.chmod(0o700)

    def _create_database(self) -> None:
        import psycopg

        if self.database == "postgres":
            return
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def create_database(self, name: str) -> str:
        """Create another database on this server (e.g. a scratch copy); returns its DSN."""
        return recreate_database(Dsn.parse(self.dsn, use_env=False), name)

