"""Run one runbook step in bash, its CLIs pointed at the rehearsal (see :mod:`.shim`).

The :class:`Workspace` is the step's world: a scratch working directory that links the
team's repository (so ``./scripts/rollback.sh`` resolves) but keeps what steps write
(``deployment-failed-*.yaml``, logs) and the generated ``.rollback_state`` out of it;
a ``bin/`` of wrappers first on PATH; shell variables carried from one step to the next
(a runbook sets ``NS=shop`` in step 1 and uses it in step 3).  Every step has a
timeout; its process group is killed at the end, so nothing it started outlives it.

    with Workspace(root, workdir=repo, context=ctx) as ws:
        result = ws.run(step, text, timeout=120)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameday.lifecycle import cancel_cleanup, on_cleanup, wait_process

SHIMMED = ("kubectl", "aws", "curl", "psql", "pg_restore", "pg_dump", "alembic", "argocd", "helm", "terraform",
           "sleep")
OUTPUT_EXCERPT_LINES = 12
# the environment's own names, never carried between steps as the runbook's variables
_NOT_CARRIED = ("BASH", "GAMEDAY_", "__gd_", "FUNCNAME", "PIPESTATUS", "SHELLOPTS", "BASHOPTS", "EUID", "PPID",
                "UID", "GROUPS", "DIRSTACK", "LINENO", "RANDOM", "SECONDS", "OLDPWD", "PWD", "PATH", "HOME",
                "SHLVL", "KUBECONFIG", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE", "PG", "TERM", "LANG", "LC_", "_=", "HOSTNAME", "USER", "SHELL")
_PRELUDE = """\
set -T -E
[ -f "$GAMEDAY_STATE" ] && source "$GAMEDAY_STATE" 2>/dev/null
trap '__gd_rc=$?; declare -p 2>/dev/null | grep -Ev '"'"'^declare -[^ ]*r|^declare -[^ ]* ({skip})'"'"' \
> "$GAMEDAY_STATE.new"; mv -f "$GAMEDAY_STATE.new" "$GAMEDAY_STATE"; exit $__gd_rc' EXIT
trap 'printf "%s\\t%s\\t%s\\n" "$?" "$LINENO" "$BASH_COMMAND" >> "$GAMEDAY_ERRLOG"' ERR
trap 'GAMEDAY_LINE=$LINENO' DEBUG
"""


@dataclass
class Call:
    """One CLI call a step made through a wrapper."""

    line: int
    tool: str
    argv: list[str]
    outcome: str  # ran | not-rehearsable | missing-cli
    exit: int
    duration_s: float
    notes: list[str] = field(default_factory=list)
    reason: str = ""
    stderr: str = ""

    @property
    def command(self) -> str:
        import shlex

        return shlex.join(self.argv)


@dataclass
class Failure:
    """A command of the step that exited non-zero (from bash's ERR trap)."""

    line: int
    exit: int
    command: str


@dataclass
class StepResult:
    status: str  # passed | failed | timeout | not-rehearsable | manual | skipped
    duration_s: float = 0.0
    exit_code: int | None = None
    output: str = ""
    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    reason: str = ""
    started: float = 0.0

    @property
    def excerpt(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        return "\n".join(lines[-OUTPUT_EXCERPT_LINES:])


def real_tools(shim_dir: Path | None = None) -> dict[str, str | None]:
    """Where each wrapped CLI really is (PATH, then this Python's own bin for aws/alembic)."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and (shim_dir is None or Path(p) != shim_dir))
    own_bin = str(Path(sys.executable).parent)
    found: dict[str, str | None] = {}
    for tool in SHIMMED:
        found[tool] = shutil.which(tool, path=path) or (shutil.which(tool, path=own_bin)
                                                        if tool in ("aws", "alembic") else None)
    return found


class Workspace:
    def __init__(self, root: Path, *, workdir: Path, context: dict[str, Any],
                 rollback_state: dict[str, str] | None = None, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.cwd = root / "work"
        self.bin = root / "bin"
        self.workdir = workdir.resolve()
        self.context = dict(context)
        self.rollback_state = rollback_state
        self.env = dict(env or {})
        self._steps = 0

    def __enter__(self) -> Workspace:
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.bin.mkdir(parents=True, exist_ok=True)
        for entry in self.workdir.iterdir() if self.workdir.is_dir() else []:
            link = self.cwd / entry.name
            if entry.name in (".rollback_state", ".git") or link.exists() or link.is_symlink():
                continue
            link.symlink_to(entry)
        if self.rollback_state is not None:
            (self.cwd / ".rollback_state").write_text(
                "".join(f"{k}={_quote(v)}\n" for k, v in self.rollback_state.items()))
        shim = Path(__file__).with_name("shim.py")
        for tool in SHIMMED:
            wrapper = self.bin / tool
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S -E "{shim}" {tool} "$@"\n')
            wrapper.chmod(0o755)
        self.context.setdefault("tools", real_tools(self.bin))
        self.context["log"] = str(self.root / "calls.jsonl")
        (self.root / "context.json").write_text(json.dumps(self.context, indent=1))
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, line_map: tuple[int, ...], text: str, *, timeout: float,
            env: dict[str, str] | None = None) -> StepResult:
        """Run ``text`` (a step's shell, placeholders filled) in bash; kill it at ``timeout``."""
        self._steps += 1
        n = self._steps
        prelude = _PRELUDE.replace("{skip}", "|".join(_NOT_CARRIED).replace("_=", "_$"))
        script = self.root / f"step-{n:03d}.sh"
        script.write_text(prelude + text + "\n")
        offset = prelude.count("\n")
        out_path = self.root / f"step-{n:03d}.out"
        errlog = self.root / f"step-{n:03d}.err"
        calls_log = Path(self.context["log"])
        calls_before = calls_log.stat().st_size if calls_log.exists() else 0
        environment = {
            **os.environ, **self.env, **(env or {}),
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "GAMEDAY_RUNBOOK_CONTEXT": str(self.root / "context.json"),
            "GAMEDAY_STATE": str(self.root / "state.sh"),
            "GAMEDAY_ERRLOG": str(errlog),
            "GAMEDAY_LINE": "0",
        }
        if self.context.get("kubernetes"):
            environment["KUBECONFIG"] = self.context["kubernetes"]["kubeconfig"]
        started = time.time()
        began = time.monotonic()
        status = "passed"
        with out_path.open("wb") as out:
            proc = subprocess.Popen(["bash", str(script)], cwd=self.cwd, env=environment, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            handle = on_cleanup(lambda: _kill_group(proc))
            try:
                wait_process(proc, timeout, what=f"runbook step {n}")  # a dead harness part ends it at once
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                status = "timeout"
                _kill_group(proc, grace=2.0)
                code = proc.wait()
            finally:
                _kill_group(proc)  # whatever it left running in the background
                cancel_cleanup(handle)
        duration = time.monotonic() - began

        def runbook_line(raw: str | int) -> int:
            try:
                index = int(raw) - offset - 1
            except ValueError:
                return line_map[0] if line_map else 0
            return line_map[max(0, min(index, len(line_map) - 1))] if line_map else 0

        calls = [_call(record, runbook_line) for record in _read_new(calls_log, calls_before)]
        failures = [Failure(runbook_line(parts[1]), int(parts[0]), parts[2])
                    for parts in (line.split("\t", 2) for line in _lines(errlog)) if len(parts) == 3
                    and parts[0].isdigit() and not parts[2].startswith("__gd_rc")]
        output = out_path.read_bytes().decode(errors="replace")
        if status != "timeout":
            if code != 0 or failures or any(c.exit != 0 for c in calls if c.outcome == "ran"):
                status = "failed"
            wrapped = [c for c in calls if c.tool != "sleep"]
            if wrapped and all(c.outcome != "ran" for c in wrapped):
                status = "not-rehearsable" if all(c.outcome == "not-rehearsable" for c in wrapped) else "failed"
        return StepResult(status=status, duration_s=duration, exit_code=code, output=output, calls=calls,
                          failures=failures, started=started,
                          reason=f"killed at its {timeout:g} s timeout" if status == "timeout" else "")


def _call(record: dict[str, Any], runbook_line: Any) -> Call:
    return Call(line=runbook_line(record.get("line", "")), tool=record["tool"], argv=record["argv"],
                outcome=record["outcome"], exit=int(record.get("exit", 0)),
                duration_s=float(record.get("duration_s", 0.0)), notes=list(record.get("notes", [])),
                reason=record.get("reason", ""), stderr=record.get("stderr", ""))


def _read_new(path: Path, offset: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as src:
        src.seek(offset)
        data = src.read().decode(errors="replace")
    records = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 0.0) -> None:
    """SIGTERM the step's process group, give it ``grace`` seconds, then SIGKILL what is left."""
    if grace > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)
