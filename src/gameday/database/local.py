"""The embedded default database: a throwaway PostgreSQL server from the installed binaries.

initdb and postgres refuse to run as root, so when gameday runs as root (CI) the server
runs as an unprivileged OS user (``GAMEDAY_PG_USER``, default ``postgres`` if present,
else ``nobody``); as a normal user it runs as that user.  Data lives in a temp dir,
the server listens on a free 127.0.0.1 port, and stop() removes everything.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from gameday import settings
from gameday.database.dsn import Dsn
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import Provider, cancel_cleanup, free_port, on_cleanup, tail, wait_until

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
    ) -> None:
        self.label = label
        self.database = database
        self.journal = journal
        self.start_timeout = start_timeout or settings.get_float("pg-start-timeout")
        self.port: int | None = None
        self.root: Path | None = None
        self._bindir: Path | None = None
        self._account: pwd.struct_passwd | None = None
        self._cleanup_handle: int | None = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> LocalPostgres:
        began = time.monotonic()
        self._bindir = pg_bindir()
        self._account = _server_account()
        self.root = Path(__import__("tempfile").mkdtemp(prefix=f"gameday-pg-{self.label}-"))
        self._cleanup_handle = on_cleanup(self.stop)
        # The parent stays root-owned but traversable so the server user reaches its data dir.
        self.root.chmod(0o755)
        for sub in ("data", "run", "log"):
            (self.root / sub).mkdir(mode=0o700)
            self._chown(self.root / sub)
        self._run([self._tool("initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "--no-sync"], what="initdb")
        self.port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root / 'run'} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_wal_size=2GB "
            "-c shared_buffers=128MB -c max_connections=50"
        )
        self._run([self._tool("pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-o", options,
                   "-w", "-t", str(int(self.start_timeout)), "start"], what="pg_ctl start", timeout=self.start_timeout + 10)
        self._started = True
        wait_until(self._accepts_connections, timeout=self.start_timeout, what=f"Postgres {self.label}",
                   logs=lambda: tail(self.logfile))
        self._create_database()
        if self.journal is not None:
            self.journal.measure(f"postgres {self.label} start", time.monotonic() - began, "s")
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        root, self.root = self.root, None
        if self._started and self._bindir is not None:
            self._started = False
            try:
                self._run([self._tool("pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "-t", "20", "stop"],
                          what="pg_ctl stop", timeout=30)
            except (EnvironmentNotReady, ConfigError):
                self._kill_postmaster(root / "data")
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
        return str(Dsn.build(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database))

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

    def _run(self, argv: list[str], *, what: str, timeout: float = 120) -> None:
        kwargs: dict[str, Any] = {}
        if self._account is not None:
            account = self._account
            kwargs["user"] = account.pw_uid
            kwargs["group"] = account.pw_gid
            kwargs["extra_groups"] = []
            kwargs["cwd"] = "/"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                                    stdin=subprocess.DEVNULL, **kwargs)
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

        try:
            with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

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
        import psycopg

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    @staticmethod
    def _kill_postmaster(datadir: Path) -> None:
        pidfile = datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass
