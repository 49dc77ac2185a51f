"""Where the shipped data lives: the checkout's top-level folders, or the installed wheel's copy."""

from __future__ import annotations

import os
import re
from pathlib import Path

from gameday import settings
from gameday.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent.parent  # src/gameday -> repo root


def shipped(folder: str) -> Path:
    """``features`` or ``scenarios``: the repo's own folder when running from a checkout,
    else the copy packaged as gameday/shipped/<folder>."""
    in_checkout = _CHECKOUT / folder
    if (_CHECKOUT / "pyproject.toml").exists() and in_checkout.is_dir():
        return in_checkout
    return _PACKAGE / "shipped" / folder


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def safe_name(value: str, what: str) -> str:
    """``value`` as a name that becomes one folder (a cluster name, a run id), never a path.

    >>> safe_name("staging-1", "cluster name")
    'staging-1'
    """
    if not _NAME.match(value or "") or value in (".", "..") or ".." in value:
        raise ConfigError(f"{what} {value!r} is not a name",
                          fix="use letters, digits, '.', '_' and '-' (no '/', no '..', not empty)")
    return value


def file_in_the_way(path: Path) -> Path | None:
    """A parent folder of ``path`` that exists as a file, so ``path`` can never be created."""
    return next((p for p in path.absolute().parents if p.exists() and not p.is_dir()), None)


def reports_folder(reports: Path | None) -> Path:
    """Where a run's reports go (--reports, else GAMEDAY_REPORTS, else ./reports), checked before anything
    runs: the reports of a rehearsal that has already happened cannot be asked for again."""
    given = "--reports" if reports is not None else settings.SETTINGS["reports"].env
    folder = reports if reports is not None else Path(settings.get("reports"))
    fix = "pass a folder (created when missing) with --reports or GAMEDAY_REPORTS"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{given} {folder} is a file, not a folder", fix=fix)
    blocking = file_in_the_way(folder)
    if blocking is not None:
        raise ConfigError(f"{given} {folder}: {blocking} is a file, not a folder", fix=fix)
    existing = next((p for p in (folder.absolute(), *folder.absolute().parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{given} {folder}: {existing} is not writable", fix=fix)
    return folder
