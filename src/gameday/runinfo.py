"""What a run rehearsed on, for its journal: the record a post-mortem cites.

    journal.environment.update(describe_run(features=[Path("features")]))

Every probe is bounded (a missing tool or a slow one is recorded as such, never waited on).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

_PROBE_TIMEOUT_S = 5.0


def _run(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def git_revision(folder: Path) -> str | None:
    """The commit the features were read from (with "+dirty" when they differ from it)."""
    if shutil.which("git") is None or not folder.is_dir():
        return None
    head = _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=folder)
    if head is None:
        return None
    dirty = _run(["git", "status", "--porcelain", "--", "."], cwd=folder)
    return head + ("+dirty" if dirty else "")


def kubectl_version() -> str | None:
    if shutil.which("kubectl") is None:
        return None
    text = _run(["kubectl", "version", "--client", "-o", "json"])
    try:
        return str(json.loads(text or "")["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return None


def postgres_version() -> str | None:
    from gameday.database.local import pg_bindir

    try:
        return _run([str(pg_bindir() / "postgres"), "--version"])
    except Exception:  # noqa: BLE001 - no server binaries is a fact to record, not an error
        return None


def describe_run(features: Iterable[Path] = (), scale: float | None = None) -> dict[str, Any]:
    """gameday and Python versions, the features' git revision, kubectl and PostgreSQL versions,
    the alarm scale, the machine's cores and memory."""
    try:
        version = metadata.version("gameday")
    except metadata.PackageNotFoundError:
        version = "unknown"
    folders = sorted({(p if p.is_dir() else p.parent).resolve() for p in features})
    info: dict[str, Any] = {
        "gameday": version,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": {"cores": os.cpu_count(), "memory_bytes": _memory_bytes()},
        "features": {str(f): git_revision(f) for f in folders},
        "kubectl": kubectl_version(),
        "postgresql": postgres_version(),
    }
    if scale is not None:
        info["alarm_scale"] = scale
    return info
