"""What a runbook's CLIs really reach: each call is pointed at the rehearsal, or refused.

A runbook step runs in bash with a folder of small wrappers first on PATH (kubectl, aws,
curl, psql, pg_restore, pg_dump, alembic, argocd, helm, terraform, sleep).  Each wrapper
execs this file, which reads the rehearsal's map (``$GAMEDAY_RUNBOOK_CONTEXT``, JSON)
and either runs the real tool against the rehearsal target or sends nothing:

- kubectl: the rehearsal kubeconfig; a namespace the map names is replaced by its
  rehearsal namespace; ``--context``/``config use-context`` only for mapped contexts.
- aws: the local AWS endpoint (moto) with throwaway credentials.
- curl: each URL's host through the host map (team host -> rehearsal address).
- psql, pg_restore, pg_dump, alembic: the rehearsal database only.
- argocd, helm, terraform: "not installed" when missing, else not rehearsable.
- sleep: scaled by the rehearsal's sleep scale (stated in the report).

Every call is one JSON line in ``$GAMEDAY_RUNBOOK_LOG``: the runbook line (the caller's
``$GAMEDAY_LINE``), the command as written and as run, outcome, exit code, duration and
the end of its error output.  Standard library only: it runs once per command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

NOT_REHEARSABLE = 3  # exit code a refused command returns to the runbook's script
MISSING_CLI = 127
LOOPBACK = re.compile(r"^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$")


class Refused(Exception):
    """Nothing is sent: the command's target is not mapped to the rehearsal."""


class Missing(Exception):
    """The CLI is not installed."""


def _flag_value(args: list[str], i: int, names: tuple[str, ...]) -> tuple[str | None, int]:
    """(value, consumed) when args[i] is one of ``names`` (``-n X``, ``--namespace=X``, ``-nX``)."""
    arg = args[i]
    for name in names:
        if arg == name:
            return (args[i + 1] if i + 1 < len(args) else None), 2
        if name.startswith("--") and arg.startswith(name + "="):
            return arg[len(name) + 1:], 1
        if len(name) == 2 and arg.startswith(name) and not arg.startswith("--") and len(arg) > 2 and name != "-i":
            return arg[2:], 1
    return None, 0


def _kubectl(args: list[str], ctx: dict[str, Any], notes: list[str]) -> list[str]:
    kube = ctx.get("kubernetes")
    if not kube:
        raise Refused("no rehearsal cluster in this check")
    namespaces: dict[str, str] = kube.get("namespaces", {})
    contexts: list[str] = kube.get("contexts", [])
    rehearsal_ns = set(namespaces.values()) | {kube["default_namespace"]}
    out: list[str] = []
    namespace_given = False
    words = [a for a in args if not a.startswith("-")]
    if words[:2] == ["config", "use-context"] or words[:2] == ["config", "current-context"]:
        if words[:2] == ["config", "current-context"]:
            return ["__echo__", contexts[0] if contexts else "gameday-rehearsal"]
        target = words[2] if len(words) > 2 else ""
        if target not in contexts:
            raise Refused(f"context {target!r} is not mapped to the rehearsal cluster")
        notes.append(f"context {target} -> the rehearsal cluster")
        return ["__echo__", f'Switched to context "{target}" (rehearsal).']
    if words[:1] == ["config"]:
        raise Refused("kubectl config would read or change the caller's kubeconfig")
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        value, used = _flag_value(args, i, ("-n", "--namespace"))
        if used:
            namespace_given = True
            if value is not None and value in namespaces:
                if namespaces[value] != value:
                    notes.append(f"namespace {value} -> {namespaces[value]}")
                value = namespaces[value]
            elif value is not None and not kube.get("owns_cluster") and value not in rehearsal_ns:
                raise Refused(f"namespace {value!r} is not mapped to a rehearsal namespace")
            out += ["--namespace", value or ""]
            i += used
            continue
        value, used = _flag_value(args, i, ("--context",))
        if used:
            if value not in contexts:
                raise Refused(f"context {value!r} is not mapped to the rehearsal cluster")
            notes.append(f"context {value} -> the rehearsal cluster")
            i += used
            continue
        value, used = _flag_value(args, i, ("--kubeconfig", "--server", "-s", "--token", "--cluster", "--user"))
        if used:
            raise Refused(f"{arg.split('=')[0]} points kubectl at another cluster")
        if arg in ("-A", "--all-namespaces"):
            namespace_given = True
        if arg in ("-it", "-ti"):  # no terminal in a rehearsal: keep stdin, drop the TTY
            notes.append("-t dropped (no terminal)")
            arg = "-i"
        elif arg in ("-t", "--tty") or arg.startswith("--tty="):
            notes.append("-t dropped (no terminal)")
            i += 1
            continue
        out.append(arg)
        i += 1
    head = ["--kubeconfig", kube["kubeconfig"]]
    if not namespace_given:
        head += ["--namespace", kube["default_namespace"]]
    return head + out


def _aws(args: list[str], ctx: dict[str, Any], notes: list[str]) -> list[str]:
    aws = ctx.get("aws")
    if not aws:
        raise Refused("no rehearsal AWS (moto) in this check")
    out: list[str] = []
    i = 0
    while i < len(args):
        value, used = _flag_value(args, i, ("--endpoint-url", "--profile"))
        if used:
            notes.append(f"{args[i].split('=')[0]} {value} ignored: the rehearsal's local AWS is used")
            i += used
            continue
        out.append(args[i])
        i += 1
    return [*out, "--endpoint-url", aws["endpoint"]]


def _map_url(url: str, ctx: dict[str, Any], notes: list[str]) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if LOOPBACK.match(host):
        return url
    hosts: dict[str, str] = ctx.get("hosts", {})
    if host not in hosts:
        raise Refused(f"host {host} is not mapped to a rehearsal address")
    target = urlsplit(hosts[host])
    notes.append(f"{host} -> {target.netloc}")
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def _curl(args: list[str], ctx: dict[str, Any], notes: list[str]) -> list[str]:
    out = []
    for arg in args:
        if re.match(r"^[a-z]+://", arg):
            arg = _map_url(arg, ctx, notes)
        elif re.match(r"^[A-Za-z0-9.-]+\.[a-z]{2,}(:\d+)?(/|$)", arg) and not arg.startswith("-"):
            arg = _map_url("http://" + arg, ctx, notes)
        out.append(arg)
    return out


_PG_FLAGS = ("-h", "--host", "-p", "--port", "-U", "--username", "-d", "--dbname")


def _postgres(tool: str, args: list[str], ctx: dict[str, Any], notes: list[str]) -> list[str]:
    database = ctx.get("database")
    if not database:
        raise Refused("no rehearsal database in this check")
    out: list[str] = []
    i = 0
    named = []
    while i < len(args):
        value, used = _flag_value(args, i, _PG_FLAGS)
        if used:
            named.append(f"{args[i].split('=')[0]} {value}")
            i += used
            continue
        arg = args[i]
        if tool == "psql" and not arg.startswith("-") and "://" in arg:
            named.append(arg.split("@")[-1])
            i += 1
            continue
        out.append(arg)
        i += 1
    if tool == "psql" and out and not out[0].startswith("-") and not any(a.startswith("-") for a in out[:1]):
        named.append(f"database {out.pop(0)}")  # psql's first word is a database name
    if named:
        notes.append(f"{', '.join(named)} -> the rehearsal database")
    return ["--dbname", database["dsn"], *out]


def _alembic(args: list[str], ctx: dict[str, Any], notes: list[str]) -> tuple[list[str], dict[str, str]]:
    database = ctx.get("database")
    if not database:
        raise Refused("no rehearsal database in this check")
    notes.append("DATABASE_URL and sqlalchemy.url -> the rehearsal database")
    url = database["dsn"].replace("postgresql://", "postgresql+psycopg://", 1)
    return args, {"DATABASE_URL": url, "SQLALCHEMY_DATABASE_URI": url}


def _sleep(args: list[str], ctx: dict[str, Any], notes: list[str]) -> list[str]:
    scale = float(ctx.get("sleep_scale", 1.0))
    if scale == 1.0:
        return args
    out = []
    for arg in args:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", arg)
        if match:
            seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
            notes.append(f"sleep {arg} scaled x{scale:g}")
            arg = f"{seconds * scale:.3f}"
        out.append(arg)
    return out


_DB_ENV = re.compile(r"^(PG\w*|DATABASE\w*|\w*_DSN|\w*DATABASE_URL\w*|SQLALCHEMY\w*)$")


def rewrite(tool: str, args: list[str], ctx: dict[str, Any]) -> tuple[list[str], dict[str, str], list[str]]:
    """(argv to run, extra environment, notes) for ``tool args``; raises Refused or Missing."""
    notes: list[str] = []
    real = ctx.get("tools", {}).get(tool)
    if not real:
        if tool in ("argocd", "helm", "terraform"):
            raise Missing(f"{tool} is not installed")
        raise Missing(f"{tool} is not installed")
    extra: dict[str, str] = {}
    if tool == "kubectl":
        argv = _kubectl(args, ctx, notes)
        if argv[:1] == ["__echo__"]:
            return argv, extra, notes
    elif tool == "aws":
        argv = _aws(args, ctx, notes)
        extra = dict(ctx["aws"].get("env", {}))
    elif tool == "curl":
        argv = _curl(args, ctx, notes)
    elif tool in ("psql", "pg_restore", "pg_dump"):
        argv = _postgres(tool, args, ctx, notes)
    elif tool == "alembic":
        argv, extra = _alembic(args, ctx, notes)
    elif tool == "sleep":
        argv = _sleep(args, ctx, notes)
    else:  # argocd, helm, terraform: installed, but nothing here maps their targets
        raise Refused(f"{tool}'s targets (servers, state, releases) are not mapped to the rehearsal")
    return [real, *argv], extra, notes


def _log(ctx: dict[str, Any], record: dict[str, Any]) -> None:
    path = ctx.get("log")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    with open(os.environ["GAMEDAY_RUNBOOK_CONTEXT"], encoding="utf-8") as src:
        ctx = json.load(src)
    record: dict[str, Any] = {"line": os.environ.get("GAMEDAY_LINE", ""), "tool": tool, "argv": [tool, *args],
                              "start": time.time()}
    began = time.monotonic()
    try:
        run, extra, notes = rewrite(tool, args, ctx)
    except (Refused, Missing) as exc:
        outcome = "not-rehearsable" if isinstance(exc, Refused) else "missing-cli"
        code = NOT_REHEARSABLE if isinstance(exc, Refused) else MISSING_CLI
        message = f"gameday: not rehearsable, nothing sent: {exc}" if isinstance(exc, Refused) \
            else f"gameday: {exc} (drift: the runbook needs it)"
        print(message, file=sys.stderr)
        _log(ctx, {**record, "outcome": outcome, "reason": str(exc), "exit": code, "duration_s": 0.0})
        return code
    if run[:1] == ["__echo__"]:
        print(run[1])
        _log(ctx, {**record, "outcome": "ran", "run": run, "notes": notes, "exit": 0, "duration_s": 0.0})
        return 0
    env = {k: v for k, v in os.environ.items() if not (tool in ("psql", "pg_restore", "pg_dump", "alembic")
                                                         and _DB_ENV.match(k))}
    env.update(extra)
    if tool == "kubectl":
        env["KUBECONFIG"] = ctx["kubernetes"]["kubeconfig"]
    proc = subprocess.run(run, env=env, stderr=subprocess.PIPE, check=False)
    err = proc.stderr.decode(errors="replace")
    sys.stderr.write(err)
    _log(ctx, {**record, "outcome": "ran", "run": run, "notes": notes, "exit": proc.returncode,
               "duration_s": round(time.monotonic() - began, 3), "stderr": err[-1500:]})
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
