"""Alembic, driven against a scratch database, in a process that cannot reach any other.

    project = MigrationProject(path)                   # an alembic folder or alembic.ini
    project.history()                                  # [Revision("0001", None, ...), ...]
    project.upgrade(dsn, "0004"); current_revision(dsn)  # -> "0004", proven after every command

A team's env.py and revision files never run in gameday's own process.  They run in a
worker (:mod:`gameday.database.migrations.worker`) started with an environment from
which every variable that could name a database was removed (names containing
DATABASE, DB, DSN, SQL, PG, URL or URI, values that look like a database URL, and the
names a project gives in ``url_env``); each command then gets the scratch database's URL
as ``-x dsn=``, as ``sqlalchemy.url``, under DATABASE_URL, SQLALCHEMY_DATABASE_URI and
the ``url_env`` names, and as libpq's PGHOST/PGPORT/PGUSER/PGDATABASE.  After every
upgrade and downgrade gameday reads alembic_version in the scratch database: if the
command reported success and the scratch database did not move, env.py used another
database, and gameday stops at once (WrongDatabase, exit 2) naming what env.py read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from gameday.database.dsn import Dsn
from gameday.errors import ConfigError, EnvironmentNotReady, GameDayError
from gameday.journal import redact
from gameday.lifecycle import cancel_cleanup, die_with_parent, on_cleanup, on_lasting_thread, stop_process
from gameday.paths import shipped

_FIX_LOCATION = "pass --script-location pointing at the alembic folder (the one holding env.py and versions/)"
_FIX_URL = ("make env.py take its URL from alembic (config.get_main_option('sqlalchemy.url') or -x dsn) or from "
            "$DATABASE_URL, or name the variable it reads with --url-env")

# Where applications commonly look for their database: they get the scratch URL.
URL_NAMES = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI")
_DATABASE_NAME = re.compile(r"DATABASE|DB|DSN|SQL|PG|URL|URI", re.IGNORECASE)
_DATABASE_VALUE = re.compile(
    r"^\s*(postgres(ql)?|mysql|mariadb|sqlite|mssql|oracle|cockroachdb|redshift)(\+\w+)?://"
    r"|\b(host|hostaddr|dbname|service)\s*=", re.IGNORECASE)
_MIGRATION_TIMEOUT_S = 600.0


def demo_migrations() -> Path:
    """The demo service's alembic project (shipped with gameday)."""
    return shipped("scenarios") / "migrations"


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str
    path: str = ""


class MigrationFailed(GameDayError):
    """An alembic upgrade or downgrade raised; ``message`` is one line (the database's own words)."""

    def __init__(self, message: str, *, sqlstate: str | None = None, where: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.where = where  # "versions/0004_x.py:31" when the failure came from the project's code


class WrongDatabase(ConfigError):
    """alembic reported success but the scratch database did not move: env.py used another one."""


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, secrets removed; SQLAlchemy wrappers show their cause."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    return redact(text)


def sqlalchemy_url(dsn: str) -> str:
    """A libpq DSN or URL as a SQLAlchemy URL with the psycopg 3 driver."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", str(Dsn.parse(dsn, use_env=False)))


def scrubbed_environment(environ: Mapping[str, str], *, url_env: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """``environ`` without anything that could name a database; returns it and the names withheld."""
    extra = set(url_env)
    kept, withheld = {}, []
    for name, value in environ.items():
        if name in extra or _DATABASE_NAME.search(name) or _DATABASE_VALUE.search(value):
            withheld.append(name)
        else:
            kept[name] = value
    return kept, sorted(withheld)


def check_connection(dsn: str) -> None:
    """Raise a one-line ConfigError when ``dsn`` does not accept connections."""
    try:
        with psycopg.connect(Dsn.parse(dsn).conninfo(), connect_timeout=5):
            return
    except psycopg.Error as exc:
        raise ConfigError(
            f"cannot connect to {Dsn.parse(dsn).redacted()}: {one_line(exc)}",
            fix="check host, port, user, password and database name in --dsn",
        ) from None


def current_revision(dsn: str) -> str | None:
    """The revision recorded in alembic_version, or None (no table, or at base)."""
    with psycopg.connect(Dsn.parse(dsn).conninfo(), autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
        if row is None or row[0] is None:
            return None
        found = conn.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall()
    return found[0][0] if found else None


class _Worker:
    """The fork server alembic runs in (see gameday.database.migrations.worker); started lazily, stopped on cleanup."""

    def __init__(self, cwd: Path, url_env: list[str]) -> None:
        self.cwd = cwd
        self.env, self.withheld = scrubbed_environment(os.environ, url_env=url_env)
        self._proc: subprocess.Popen[bytes] | None = None
        self._handle: int | None = None

    def request(self, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps({**request, "withheld": self.withheld}) + "\n").encode())
        proc.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.close()
                return {"ok": False, "kind": "timeout", "message": f"did not finish in {timeout:g} s (killed)"}
        line = proc.stdout.readline()
        if not line:
            code = proc.poll()
            self.close()
            return {"ok": False, "kind": "failed", "message": f"the migration worker died (exit {code})"}
        return json.loads(line)  # type: ignore[no-any-return]

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            # die_with_parent fires when the forking *thread* ends: fork from one that lasts
            self._proc = on_lasting_thread(lambda: subprocess.Popen(
                [sys.executable, "-m", "gameday.database.migrations.worker"], cwd=self.cwd, env=self.env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent))
            self._handle = on_cleanup(self.close)
        return self._proc

    def close(self) -> None:
        if self._proc is not None:
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            stop_process(self._proc, grace=2.0)
            self._proc = None
        if self._handle is not None:
            cancel_cleanup(self._handle)
            self._handle = None


def check_base_spec(spec: str) -> None:
    """``module:function``, refused before anything starts when it is not."""
    module, sep, function = spec.partition(":")
    if not sep or not module or not function.isidentifier():
        raise ConfigError(f"--base {spec!r} is not module:function", fix="e.g. --base myapp.db:create_all")


class MigrationProject:
    """One alembic project: a folder with env.py and versions/ (and maybe alembic.ini).

    ``url_env`` names the environment variables the project's env.py reads its URL from,
    beyond DATABASE_URL and SQLALCHEMY_DATABASE_URI: they get the scratch URL."""

    def __init__(self, script_location: Path | str | None = None, *, url_env: Iterable[str] = (),
                 timeout: float = _MIGRATION_TIMEOUT_S) -> None:
        path = Path(script_location) if script_location else demo_migrations()
        ini: Path | None = None
        if path.is_file() and path.suffix == ".ini":
            ini = path
        elif (path / "alembic.ini").is_file():
            ini = path / "alembic.ini"
        if ini is not None and not (path.is_dir() and (path / "env.py").is_file()):
            # an alembic.ini names the folder (script_location) where env.py lives
            location = _ini_script_location(ini)
            path = Path(location)
            if not path.is_absolute() and not path.is_dir():
                path = ini.parent / location  # alembic reads it from the cwd; next to the ini is likelier
        if path.is_file() and ini is None:
            raise ConfigError(f"{path} is a file, not an alembic folder or alembic.ini", fix=_FIX_LOCATION)
        if not path.is_dir():
            raise ConfigError(f"alembic folder {path} does not exist", fix=_FIX_LOCATION)
        if not (path / "env.py").is_file():
            raise ConfigError(f"alembic folder {path} has no env.py", fix=_FIX_LOCATION)
        self.path = path.resolve()
        self.ini = ini.resolve() if ini is not None else None
        self.url_env = [*URL_NAMES, *(n for n in url_env if n not in URL_NAMES)]
        self.timeout = timeout
        self._worker = _Worker(self.ini.parent if self.ini else Path.cwd(), self.url_env)
        weakref.finalize(self, self._worker.close)  # a project dropped unclosed does not keep its worker
        self._history: list[Revision] | None = None

    def __repr__(self) -> str:
        return f"MigrationProject({str(self.path)!r})"

    def __enter__(self) -> MigrationProject:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._worker.close()

    @property
    def withheld(self) -> list[str]:
        """Environment variables kept from the migrations (they could name a database)."""
        return self._worker.withheld

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        base = {"path": str(self.path), "ini": str(self.ini) if self.ini else None}
        return self._worker.request({**base, **request}, timeout=self.timeout)

    def history(self) -> list[Revision]:
        """Revisions base → head; only a single linear chain is supported."""
        if self._history is not None:
            return self._history
        reply = self._ask({"op": "history"})
        if not reply["ok"]:
            if reply.get("kind") in ("bad-input", "withheld"):
                raise self._bad_input(reply, "cannot read the history")
            raise ConfigError(f"alembic project {self.path}: {redact(reply['message'])}", fix=_FIX_LOCATION)
        heads = reply["heads"]
        if len(heads) > 1:
            raise ConfigError(
                f"alembic project {self.path} has {len(heads)} heads ({', '.join(sorted(heads))})",
                fix="merge the branches (alembic merge heads) so the chain is linear",
            )
        merges = [r["revision"] for r in reply["revisions"] if r.get("merge")]
        if merges:
            raise ConfigError(f"alembic project {self.path} has merge revisions ({', '.join(merges)})",
                              fix="check a linear stretch of the history with --revision")
        self._history = [Revision(r["revision"], r["down_revision"], r["doc"], r["path"]) for r in reply["revisions"]]
        return self._history

    def resolve(self, revision: str, current: str | None = None) -> str | None:
        """A concrete revision id for ``revision`` (id or unique prefix, head, base, -N/+N from
        ``current``); None means base (no revision applied)."""
        chain = [r.revision for r in self.history()]
        if revision == "base":
            return None
        if revision in ("head", "heads"):
            return chain[-1] if chain else None
        if re.fullmatch(r"[-+]\d+", revision):
            position = (chain.index(current) + 1 if current in chain else 0) + int(revision)
            if not 0 <= position <= len(chain):
                raise ConfigError(f"revision {revision} from {current or 'base'} is outside the chain",
                                  fix=f"known revisions: {_some(chain)}")
            return chain[position - 1] if position else None
        found = [r for r in chain if r == revision] or [r for r in chain if r.startswith(revision)]
        if len(found) != 1:
            what = "is ambiguous in" if found else "is not in"
            raise ConfigError(f"revision {revision!r} {what} {self.path}",
                              fix=f"known revisions: {_some(chain) or '(none)'}, head, base")
        return found[0]

    def previous(self, revision: str) -> str | None:
        """The revision before ``revision`` (None: base)."""
        for item in self.history():
            if item.revision == revision:
                return item.down_revision
        raise ConfigError(f"revision {revision!r} is not in {self.path}", fix="see `alembic history`")

    def upgrade(self, dsn: str, revision: str | None) -> float:
        """Upgrade to ``revision``; returns seconds taken; raises MigrationFailed, or WrongDatabase
        when the scratch database did not move."""
        return self._run(dsn, revision, "upgrade")

    def downgrade(self, dsn: str, revision: str | None) -> float:
        """Downgrade to ``revision`` (None: base); returns seconds taken; raises MigrationFailed."""
        return self._run(dsn, revision, "downgrade")

    def _run(self, dsn: str, revision: str | None, verb: str) -> float:
        target = revision or "base"
        expected = self.resolve(target, current_revision(dsn))
        began = time.monotonic()
        url = sqlalchemy_url(dsn)
        reply = self._ask({"op": verb, "revision": target, "url": url, "url_env": self.url_env,
                           "libpq": Dsn.parse(dsn, use_env=False).libpq_env()})
        seconds = float(reply.get("seconds") or time.monotonic() - began)
        if not reply["ok"]:
            if reply.get("kind") in ("bad-input", "withheld"):
                raise self._bad_input(reply, f"alembic {verb} to {target} failed")
            where = self._where(reply)
            raise MigrationFailed(f"alembic {verb} to {target} failed: {redact(reply['message'])}",
                                  sqlstate=reply.get("sqlstate"), where=where)
        landed = current_revision(dsn)
        if landed != expected:
            database = Dsn.parse(dsn, use_env=False).dbname
            # what env.py looked for (PG* are read by every libpq client and were set to the scratch database)
            read = [n for n in reply.get("read", [])
                    if (n in self.withheld or n in self.url_env) and not n.startswith("PG")]
            told = f"; it read ${', $'.join(read)}" if read else "; it read no database variable"
            raise WrongDatabase(
                f"alembic {verb} to {target} reported success, but the scratch database {database} is at "
                f"{landed or 'base'}: {self.path / 'env.py'} ran the migrations on another database{told}",
                fix=_FIX_URL)
        return seconds

    def run_base(self, dsn: str, spec: str) -> None:
        """Call ``module:function`` with the scratch URL, in the migrations' process: the base schema
        an application creates itself before alembic takes over."""
        check_base_spec(spec)
        reply = self._ask({"op": "base", "base": spec, "url": sqlalchemy_url(dsn), "url_env": self.url_env,
                           "libpq": Dsn.parse(dsn, use_env=False).libpq_env()})
        if not reply["ok"]:
            where = self._where(reply)
            raise ConfigError(f"--base {spec} failed{' at ' + where if where else ''}: {redact(reply['message'])}",
                              fix="the function is called with the scratch database's URL and must create the "
                                  "base schema in it")

    def _where(self, reply: dict[str, Any]) -> str:
        if not reply.get("file"):
            return ""
        file = Path(reply["file"])
        with contextlib.suppress(ValueError):
            file = file.resolve().relative_to(self.path.parent)
        return f"{file}:{reply.get('line') or '?'}"

    def _bad_input(self, reply: dict[str, Any], what: str) -> ConfigError:
        where = self._where(reply)
        if reply.get("kind") == "withheld":
            name = reply["message"].split(":", 1)[-1].strip().strip("'\"")
            return ConfigError(f"{what}: {where or 'env.py'} reads ${name}, which gameday withholds from migrations "
                               "(it could name a real database)",
                               fix=f"pass --url-env {name} so it gets the scratch database's URL")
        return ConfigError(f"{what}: {where}: {redact(reply['message'])}",
                           fix="fix that file: alembic cannot load it")


def _some(chain: list[str], limit: int = 12) -> str:
    return ", ".join(chain if len(chain) <= limit else [*chain[:5], "...", *chain[-5:]])


def _ini_script_location(ini: Path) -> str:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini)
    except configparser.Error as exc:
        raise ConfigError(f"{ini} is not a valid ini file: {str(exc).splitlines()[0]}", fix=_FIX_LOCATION) from None
    location = parser.get("alembic", "script_location", fallback="")
    if not location:
        raise ConfigError(f"{ini} sets no script_location", fix=_FIX_LOCATION)
    return location.replace("%(here)s", str(ini.parent))


class ScratchDatabases:
    """Throwaway databases on the server behind ``server_dsn``; all dropped on close or exit.

    The database named in ``server_dsn`` itself is never written to."""

    def __init__(self, server_dsn: str, prefix: str = "gameday_mig") -> None:
        self.server = Dsn.parse(server_dsn)
        self.prefix = prefix
        self.created: list[str] = []
        self._handle: int | None = None

    def __enter__(self) -> ScratchDatabases:
        self._handle = on_cleanup(self.close)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _admin(self) -> psycopg.Connection:
        last: Exception | None = None
        for dbname in ("postgres", self.server.dbname or "template1"):
            try:
                return psycopg.connect(self.server.with_database(dbname).conninfo(), autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                last = exc
        raise ConfigError(f"cannot connect to {self.server.redacted()}: {one_line(last or Exception())}",
                          fix="check host, port, user and password of --dsn")

    def create(self, tag: str) -> str:
        """A new empty database; returns its DSN."""
        name = self._name(tag)
        with self._admin() as conn:
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.Error as exc:
                raise EnvironmentNotReady(
                    f"cannot create scratch database on {self.server.redacted()}: {one_line(exc)}",
                    fix="the check needs a role with CREATEDB; it never writes to the source database",
                ) from None
        self.created.append(name)
        return str(self.server.with_database(name))

    def copy(self, template_dsn: str, tag: str) -> str:
        """A new database made from ``template_dsn`` (CREATE DATABASE ... TEMPLATE); returns its DSN."""
        source = Dsn.parse(template_dsn, use_env=False).dbname
        if source not in self.created:
            raise ConfigError(f"{source} is not a scratch database of this check", fix="copy only scratch databases")
        name = self._name(tag)
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        self.created.append(name)
        return str(self.server.with_database(name))

    def _name(self, tag: str) -> str:
        return f"{self.prefix}_{re.sub(r'[^a-z0-9]', '_', tag.lower())}_{uuid.uuid4().hex[:8]}"[:63]

    def drop(self, dsn: str) -> None:
        name = Dsn.parse(dsn).dbname
        if name not in self.created:
            return
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            try:
                self.drop(str(self.server.with_database(name)))
            except Exception:  # noqa: BLE001 - the server may be gone already; keep going
                self.created.remove(name)
        if self._handle is not None:
            cancel_cleanup(self._handle)
            self._handle = None
