"""The process alembic runs in: a fork server with an environment that names no database.

gameday never runs a team's env.py or revision files in its own process.  It starts
this worker once per alembic project with an environment scrubbed of every variable
that could point at a database (see :func:`gameday.database.migrations.scrubbed_environment`);
the worker imports alembic and SQLAlchemy once, then forks one child per command, so
each command starts from a clean interpreter state (application settings read at
import time are read again, with the scratch URL) without paying the import cost.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.

    {"op": "history"}
    {"op": "base", "base": "module:function", "url": ..., "url_env": [...]}
    {"op": "upgrade" | "downgrade", "revision": "abc123", "url": "postgresql+psycopg://...",
     "url_env": ["DATABASE_URL", ...]}

A reply is ``{"ok": true, ...}`` or ``{"ok": false, "kind": ..., "message": ..., "file": ..., "line": ...}``
where kind is ``bad-input`` (a syntax or import error in env.py or a revision file),
``withheld`` (env.py read a variable gameday withholds) or ``failed`` (the migration
raised: the database's own message).  Every environment variable the command read is
listed in ``read``, so a command that ignored the URL it was given can be explained.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import alembic.command  # noqa: F401 - imported once here, before any fork
import psycopg  # noqa: F401 - the usual driver, so children do not import it each time
import sqlalchemy  # noqa: F401
from alembic.config import Config
from alembic.script import ScriptDirectory

from gameday.lifecycle import die_with_parent


class _RecordingEnviron(os._Environ):  # type: ignore[type-arg,name-defined]
    """os.environ that remembers which names were read."""

    read: list[str]

    def __getitem__(self, key: str) -> str:
        if key not in self.read:
            self.read.append(key)
        return super().__getitem__(key)  # type: ignore[no-any-return]


def _record_reads() -> list[str]:
    environ = os.environ
    environ.__class__ = _RecordingEnviron
    environ.read = []  # type: ignore[attr-defined]
    return environ.read  # type: ignore[attr-defined,no-any-return]


def _config(request: dict[str, Any], stdout: io.StringIO) -> Config:
    ini = request.get("ini")
    cfg = Config(ini, stdout=stdout) if ini else Config(stdout=stdout)
    cfg.set_main_option("script_location", request["path"])
    cfg.attributes["configure_logger"] = False
    url = request.get("url")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
        cfg.cmd_opts = argparse.Namespace(x=[f"dsn={url}"])
    return cfg


def _history(cfg: Config) -> dict[str, Any]:
    script = ScriptDirectory.from_config(cfg)
    revisions = []
    for item in reversed(list(script.walk_revisions())):
        down = item.down_revision
        revisions.append({"revision": item.revision, "down_revision": down if isinstance(down, str) else None,
                          "merge": isinstance(down, tuple | list), "doc": item.doc or "", "path": item.path})
    return {"heads": list(script.get_heads()), "revisions": revisions}


def _in_project(filename: str, project: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(project)
        return True
    except (ValueError, OSError):
        return False


def _where(exc: BaseException, project: Path) -> tuple[str | None, int | None]:
    """The innermost frame of the traceback inside the alembic project (env.py, versions/...)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if _in_project(frame.filename, project):
            found = (frame.filename, frame.lineno)
    return found


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__


def _failure(exc: BaseException, request: dict[str, Any], read: list[str]) -> dict[str, Any]:
    project = Path(request["path"]).resolve()
    file, line = _where(exc, project)
    withheld = set(request.get("withheld", []))
    kind = "failed"
    from_database = type(exc).__module__.split(".")[0] in ("sqlalchemy", "psycopg", "psycopg2", "alembic")
    if isinstance(exc, SyntaxError | ImportError) and file is not None:
        kind = "bad-input"
    elif file is not None and Path(file).name == "env.py" and not from_database and not isinstance(exc, KeyError):
        kind = "bad-input"  # env.py itself is broken: no revision can run
    elif isinstance(exc, KeyError) and exc.args and exc.args[0] in withheld:
        kind = "withheld"
    cause = getattr(exc, "orig", None) or exc
    return {"ok": False, "kind": kind, "message": _first_line(exc), "file": file, "line": line,
            "sqlstate": getattr(cause, "sqlstate", None), "read": read}


def _run(request: dict[str, Any]) -> dict[str, Any]:
    """One command, in a forked child."""
    for name in request.get("url_env", []):
        os.environ[name] = request["url"]
    os.environ.update(request.get("libpq", {}))  # PGHOST, PGPORT, ...: libpq's defaults are the scratch database
    read = _record_reads()
    stdout = io.StringIO()
    try:
        cfg = _config(request, stdout)
        if request["op"] == "history":
            return {"ok": True, **_history(cfg), "read": read}
        if request["op"] == "base":
            module, _, function = request["base"].partition(":")
            project = Path(request["path"])
            sys.path[:0] = [os.getcwd(), str(project.parent), str(project)]  # where the application's module is
            getattr(importlib.import_module(module), function)(request["url"])
            return {"ok": True, "read": read}
        action = alembic.command.upgrade if request["op"] == "upgrade" else alembic.command.downgrade
        began = time.monotonic()
        action(cfg, request["revision"])
        return {"ok": True, "read": read, "seconds": time.monotonic() - began}
    except BaseException as exc:  # noqa: BLE001 - a migration may raise anything, even SystemExit
        return _failure(exc, request, read)


def _serve_one(request: dict[str, Any], log: int) -> dict[str, Any]:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the command, write the reply, leave without cleanup handlers
        die_with_parent()
        os.close(reader)
        os.dup2(log, 1)
        os.dup2(log, 2)
        try:
            if request.get("cwd"):
                os.chdir(request["cwd"])
            reply = _run(request)
        except BaseException as exc:  # noqa: BLE001
            reply = {"ok": False, "kind": "failed", "message": _first_line(exc), "read": []}
        with os.fdopen(writer, "w") as out:
            out.write(json.dumps(reply, default=str))
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as src:
        data = src.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        code = os.waitstatus_to_exitcode(status)
        return {"ok": False, "kind": "failed", "message": f"the migration process died (exit {code})", "read": []}
    return json.loads(data)  # type: ignore[no-any-return]


def main() -> None:
    log = os.open(os.environ.get("GAMEDAY_WORKER_LOG", os.devnull), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.environ.pop("GAMEDAY_WORKER_LOG", None)
    replies = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the protocol stream
    for line in sys.stdin:
        if line.strip():
            replies.write(json.dumps(_serve_one(json.loads(line), log)) + "\n")
            replies.flush()


if __name__ == "__main__":
    main()
