"""Alembic, driven programmatically against a DSN, and the scratch databases it runs in.

    project = MigrationProject()                      # the demo service's migrations
    project.history()                                 # [Revision("0001", None, ...), ...]
    project.upgrade(dsn, "0004"); current_revision(dsn)  # -> "0004"

The reversibility proof lives in :mod:`gameday.database.migrations_check`; schema and
data snapshots in :mod:`gameday.database.migrations_catalog`.  Any alembic project with
a conventional env.py works: the URL is handed over as ``-x dsn=``, as ``sqlalchemy.url``
and (for env.py files following the alembic cookbook) nothing else is needed.
"""

from __future__ import annotations

import argparse
import io
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError

from gameday.database.dsn import Dsn
from gameday.errors import ConfigError, EnvironmentNotReady, GameDayError
from gameday.journal import redact
from gameday.lifecycle import cancel_cleanup, on_cleanup
from gameday.paths import shipped

_FIX_LOCATION = "pass --script-location pointing at the alembic folder (the one holding env.py and versions/)"


def demo_migrations() -> Path:
    """The demo service's alembic project (shipped with gameday)."""
    return shipped("scenarios") / "migrations"


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str


class MigrationFailed(GameDayError):
    """An alembic upgrade or downgrade raised; ``message`` is one line."""


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, secrets removed; SQLAlchemy wrappers show their cause."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    return redact(text)


def sqlalchemy_url(dsn: str) -> str:
    """A libpq DSN or URL as a SQLAlchemy URL with the psycopg 3 driver."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", str(Dsn.parse(dsn, use_env=False)))


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


class MigrationProject:
    """One alembic project: a folder with env.py and versions/ (and maybe alembic.ini)."""

    def __init__(self, script_location: Path | str | None = None) -> None:
        path = Path(script_location) if script_location else demo_migrations()
        ini: Path | None = None
        if path.is_file() and path.suffix == ".ini":
            ini = path
        elif (path / "alembic.ini").is_file():
            ini = path / "alembic.ini"
        if ini is not None and not (path.is_dir() and (path / "env.py").is_file()):
            # an alembic.ini names the folder (script_location) where env.py lives
            location = Config(str(ini)).get_main_option("script_location")
            if not location:
                raise ConfigError(f"{ini} sets no script_location", fix=_FIX_LOCATION)
            path = Path(location)
            if not path.is_absolute() and not path.is_dir():
                path = ini.parent / location  # alembic reads it from the cwd; next to the ini is likelier
        if not path.is_dir():
            raise ConfigError(f"alembic folder {path} does not exist", fix=_FIX_LOCATION)
        if not (path / "env.py").is_file():
            raise ConfigError(f"alembic folder {path} has no env.py", fix=_FIX_LOCATION)
        self.path = path.resolve()
        self.ini = ini.resolve() if ini is not None else None
        self.output = io.StringIO()  # what alembic commands print
        self._script: ScriptDirectory | None = None

    def __repr__(self) -> str:
        return f"MigrationProject({str(self.path)!r})"

    def config(self, dsn: str | None = None) -> Config:
        cfg = Config(str(self.ini), stdout=self.output) if self.ini else Config(stdout=self.output)
        cfg.set_main_option("script_location", str(self.path))
        cfg.attributes["configure_logger"] = False  # keep the caller's logging as it is
        if dsn is not None:
            url = sqlalchemy_url(dsn)
            cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
            cfg.cmd_opts = argparse.Namespace(x=[f"dsn={url}"])
        return cfg

    @property
    def script(self) -> ScriptDirectory:
        if self._script is None:
            try:
                self._script = ScriptDirectory.from_config(self.config())
            except (CommandError, RevisionError) as exc:
                raise ConfigError(f"alembic project {self.path}: {one_line(exc)}", fix=_FIX_LOCATION) from None
        return self._script

    def history(self) -> list[Revision]:
        """Revisions base → head; only a single linear chain is supported."""
        try:
            heads = self.script.get_heads()
            walked = list(self.script.walk_revisions())
        except (CommandError, RevisionError) as exc:
            raise ConfigError(f"alembic project {self.path}: {one_line(exc)}", fix=_FIX_LOCATION) from None
        if len(heads) > 1:
            raise ConfigError(
                f"alembic project {self.path} has {len(heads)} heads ({', '.join(sorted(heads))})",
                fix="merge the branches (alembic merge heads) so the chain is linear",
            )
        return [
            Revision(s.revision, s.down_revision if isinstance(s.down_revision, str) else None, s.doc or "")
            for s in reversed(walked)
        ]

    def resolve(self, revision: str, current: str | None = None) -> str | None:
        """A concrete revision id for ``revision`` (id or prefix, head, base, -N/+N from ``current``);
        None means base (no revision applied)."""
        chain = [r.revision for r in self.history()]
        if revision == "base":
            return None
        if revision in ("head", "heads"):
            return chain[-1] if chain else None
        if re.fullmatch(r"[-+]\d+", revision):
            position = (chain.index(current) + 1 if current in chain else 0) + int(revision)
            if not 0 <= position <= len(chain):
                raise ConfigError(f"revision {revision} from {current or 'base'} is outside the chain",
                                  fix=f"known revisions: {', '.join(chain)}")
            return chain[position - 1] if position else None
        try:
            found = self.script.get_revision(revision)
        except (CommandError, RevisionError):
            found = None
        if found is None:
            raise ConfigError(
                f"revision {revision!r} is not in {self.path}",
                fix=f"known revisions: {', '.join(chain) or '(none)'}, head, base",
            )
        return found.revision

    def previous(self, revision: str) -> str | None:
        """The revision before ``revision`` (None: base)."""
        for item in self.history():
            if item.revision == revision:
                return item.down_revision
        raise ConfigError(f"revision {revision!r} is not in {self.path}", fix="see `alembic history`")

    def upgrade(self, dsn: str, revision: str | None) -> float:
        """Upgrade to ``revision``; returns seconds taken; raises MigrationFailed."""
        return self._run(command.upgrade, dsn, revision or "base", "upgrade")

    def downgrade(self, dsn: str, revision: str | None) -> float:
        """Downgrade to ``revision`` (None: base); returns seconds taken; raises MigrationFailed."""
        return self._run(command.downgrade, dsn, revision or "base", "downgrade")

    def _run(self, action, dsn: str, revision: str, verb: str) -> float:  # type: ignore[no-untyped-def]
        began = time.monotonic()
        try:
            action(self.config(dsn), revision)
        except GameDayError:
            raise
        except Exception as exc:  # noqa: BLE001 - a migration may raise anything; report it in one line
            raise MigrationFailed(f"alembic {verb} to {revision} failed: {one_line(exc)}") from exc
        return time.monotonic() - began


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
        name = f"{self.prefix}_{re.sub(r'[^a-z0-9]', '_', tag.lower())}_{uuid.uuid4().hex[:8]}"[:63]
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
