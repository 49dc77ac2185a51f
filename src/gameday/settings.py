"""Every default gameday uses, each overridable by a GAMEDAY_* environment variable.

This table is the one place defaults are documented; `gameday settings` prints it.  It
also says what each setting accepts (a kind, a range or the choices): a value is checked
whenever it is read, and `gameday` checks them all before any command starts, so a bad
value is one line naming the variable and what it accepts (exit 2), never a traceback or
a rehearsal that runs for minutes first.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gameday.errors import ConfigError

# What a setting's value is; Setting.check enforces it.
#   text      anything                      int, number  a whole number / a number, in [low, high]
#   choice    one of ``choices``            flag         0 or 1
#   folder    a folder, created when missing (never an existing file)
#   existing-folder, existing-file, existing-path        must exist as set
#   files     existing files separated by os.pathsep     user  an OS user
#   dsn       a PostgreSQL connection string             region  an AWS region name
#   file-or-dsn  a file path, or a postgresql:// URL (the history store)
KINDS = ("text", "int", "number", "choice", "flag", "folder", "existing-folder", "existing-file", "existing-path",
         "files", "user", "dsn", "region", "file-or-dsn")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    kind: str = "text"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""  # what a number counts: "seconds", "rows", ...
    fix: str = ""  # how to fix a bad value, when the kind alone does not say it

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name}: unknown kind {self.kind!r}")

    @property
    def env(self) -> str:
        return "GAMEDAY_" + self.name.upper().replace("-", "_")

    def accepts(self) -> str:
        """What a valid value looks like, for messages and `gameday settings`."""
        if self.kind in ("int", "number"):
            what = "a whole number" if self.kind == "int" else "a number"
            unit = f" of {self.unit}" if self.unit else ""
            if self.high is None:
                return f"{what}{unit} ≥ {self.low:g}"
            return f"{what}{unit} from {self.low:g} to {self.high:g}"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "flag":
            return "1 (on) or 0 (off)"
        return {
            "folder": "a folder (created when missing)",
            "existing-folder": "an existing folder",
            "existing-file": "an existing file",
            "existing-path": "an existing file or folder",
            "files": f"existing files separated by {os.pathsep!r}",
            "user": "the name of an existing OS user",
            "dsn": "a PostgreSQL connection string (postgresql://user@host:5432/db or 'host=... dbname=...')",
            "region": "an AWS region name such as us-east-1",
            "file-or-dsn": "a file path, or a PostgreSQL URL postgresql://user@host:5432/db",
        }.get(self.kind, "any text")

    def check(self, value: str) -> str:
        """``value`` when this setting accepts it; else ConfigError naming the variable, the value and the fix."""
        problem = self._problem(value)
        if problem is None:
            return value
        shown = value if self.kind not in ("dsn", "file-or-dsn") else _redacted_dsn(value)
        raise ConfigError(f"{self.env}={shown}: {problem}",
                          fix=self.fix or f"set it to {self.accepts()}, or unset it for the default ({self.default!r})")

    def _problem(self, value: str) -> str | None:
        text = value.strip()
        if self.kind in ("int", "number"):
            try:
                number = float(int(text)) if self.kind == "int" else float(text)
            except ValueError:
                return "not a whole number" if self.kind == "int" else "not a number"
            if not math.isfinite(number):
                return "not a finite number"
            if self.low is not None and number < self.low:
                return f"below {self.low:g}"
            if self.high is not None and number > self.high:
                return f"above {self.high:g}"
            return None
        if self.kind == "choice":
            return None if text in self.choices else "not a known choice"
        if self.kind == "flag":
            return None if text in ("0", "1") else "not 0 or 1"
        return _PATH_CHECKS.get(self.kind, lambda _: None)(text)


def _folder(text: str) -> str | None:
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"{parent} is a file, not a folder"
    return None


def _existing_folder(text: str) -> str | None:
    path = Path(text).expanduser()
    if not path.exists():
        return "no such folder"
    return None if path.is_dir() else "is a file, not a folder"


def _existing_file(text: str) -> str | None:
    path = Path(text).expanduser()
    if not path.exists():
        return "no such file"
    return None if path.is_file() else "is a folder, not a file"


def _existing_path(text: str) -> str | None:
    return None if Path(text).expanduser().exists() else "no such file or folder"


def _files(text: str) -> str | None:
    for part in (p for p in text.split(os.pathsep) if p.strip()):
        problem = _existing_file(part)
        if problem is not None:
            return f"{part}: {problem}"
    return None


def _user(text: str) -> str | None:
    import pwd

    try:
        pwd.getpwnam(text)
    except KeyError:
        return "no such OS user"
    return None


def _dsn(text: str) -> str | None:
    from gameday.database.dsn import Dsn

    try:
        Dsn.parse(text, use_env=False)
    except ConfigError as exc:
        return exc.message
    return None


def _file_or_dsn(text: str) -> str | None:
    """A postgresql:// URL that parses, or anything else but another scheme's URL or a key=value string
    (the file itself is checked where it is used: History.check)."""
    if text.startswith(("postgresql://", "postgres://")):
        return _dsn(text)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return "not a file path or a postgresql:// URL"
    if re.match(r"^\w+\s*=", text):
        return "a key=value connection string: give the store as a postgresql:// URL"
    return None


def _redacted_dsn(text: str) -> str:
    from gameday.database.dsn import redact_dsn

    return redact_dsn(text)


def _region(text: str) -> str | None:
    return None if _REGION.match(text) else "not an AWS region name"


_PATH_CHECKS = {"folder": _folder, "existing-folder": _existing_folder, "existing-file": _existing_file,
                "existing-path": _existing_path, "files": _files, "user": _user, "dsn": _dsn, "region": _region,
                "file-or-dsn": _file_or_dsn}


def _cache_home() -> str:
    return os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")


def _providers(kind: str) -> tuple[str, ...]:
    from gameday.providers import AUTO, REGISTRY

    return (*(a for a in AUTO if a), *REGISTRY[kind])


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("reports", "reports", "directory that receives reports/<run-id>/", kind="folder"),
        Setting("history", "", "game-day history store: a SQLite file, or a PostgreSQL URL "
                "(postgresql://user@host/db; the password may come from PGPASSWORD) that CI runners share "
                "(default: <reports>/history.sqlite)", kind="file-or-dsn",
                fix="set it to a file path or a postgresql://user@host:5432/db URL, or unset it for "
                    "<reports>/history.sqlite"),
        Setting("cache", str(Path(_cache_home()) / "gameday"), "cache for built binaries (Kubernetes, etcd)",
                kind="existing-folder",
                fix="create it (mkdir -p) or unset GAMEDAY_CACHE for the default; an empty cache means building "
                    "the control plane again, for minutes"),
        Setting("pg-bindir", "", "PostgreSQL server binaries (default: `pg_config --bindir`)", kind="existing-folder",
                fix="set it to the folder holding initdb and pg_ctl (e.g. /usr/lib/postgresql/15/bin), or unset it"),
        Setting("pg-user", "", "unprivileged OS user that runs local Postgres when gameday runs as root "
                "(default: postgres if that user exists, else nobody)", kind="user",
                fix="create that user, or unset GAMEDAY_PG_USER (postgres, else nobody)"),
        Setting("pg-start-timeout", "30", "seconds to wait for a local Postgres to accept connections",
                kind="number", low=1, high=3600, unit="seconds"),
        Setting("dump-format", "custom", "pg_dump format for snapshots: custom (measured faster here: benchmarks/database.py) or directory",
                kind="choice", choices=("custom", "directory")),
        Setting("dump-jobs", "2", "parallel jobs for directory-format dumps and restores",
                kind="int", low=1, high=256, unit="parallel jobs"),
        Setting("database", "", "database provider: local, container (Docker) or dsn; unset = container if a Docker "
                "daemon answers, else local", kind="choice", choices=_providers("database")),
        Setting("postgres-image", "", "image of the container database provider (default: the one built here from "
                "the machine's PostgreSQL when the Docker engine has it, else the official image; built here when no "
                "registry answers)"),
        Setting("cluster", "auto", "cluster provider: local, k3s (Docker) or kubeconfig; auto = Docker if a daemon "
                "answers, else local", kind="choice", choices=_providers("cluster")),
        Setting("kubeconfig", "", "kubeconfig of an existing rehearsal cluster for the kubeconfig provider "
                "(default: $KUBECONFIG, else ~/.kube/config)"),  # a missing one: the provider says so, in the run's report
        Setting("kube-context", "", "context in that kubeconfig (default: its current context)"),
        Setting("config", "", "project file (gameday.yaml) to use; default: the nearest one upward from the working "
                "directory, else the shipped demo project", kind="existing-path"),
        Setting("images", "", "extra image catalog files for the embedded cluster and ECS tasks, separated by "
                "the path separator (:)", kind="files"),
        Setting("aws", "moto", "AWS target: moto (local API, ECS tasks as processes) or real (only targets tagged "
                "gameday:rehearsal=true)", kind="choice", choices=_providers("aws")),
        Setting("aws-region", "us-east-1", "region of the local moto AWS", kind="region"),
        Setting("moto-start-timeout", "30", "seconds to wait for the local moto server",
                kind="number", low=1, high=3600, unit="seconds"),
        Setting("dsn", "", "connection string for the dsn database provider", kind="dsn"),
        Setting("migrations-seed-rows", "1000", "rows per table the migration round-trip check seeds",
                kind="int", low=1, high=10_000_000, unit="rows"),
        Setting("live", "0", "1: a live game day, the people on call act instead of the scenario's scripted "
                "steps (gameday run --live)", kind="flag"),
        Setting("live-give-up", "300", "live game day: how long to wait for the people to act before the scenario "
                "fails", kind="number", low=1, high=24 * 3600, unit="seconds"),
        Setting("live-hint-after", "60", "live game day: seconds after the bad deploy before the scenario's scripted "
                "answer is shown as a hint", kind="number", low=0, high=24 * 3600, unit="seconds"),
        Setting("load-max-seconds", "120", "upper bound (locust --run-time) of a load run when the caller gives none",
                kind="number", low=1, high=24 * 3600, unit="seconds"),
        Setting("load-user-rate", "10", "requests per second each simulated load user makes (0 = no pause)",
                kind="number", low=0, high=1000, unit="requests per second"),
        Setting("metrics-server", "0", "1 runs metrics-server (built by ./dev setup) in local clusters, for "
                "`kubectl top`; off by default, as it costs a process and scrapes every 15 s", kind="flag"),
        Setting("kubelet-backoff-base", "10", "process kubelet restart/image-pull back-off base in seconds (doubles per failure)",
                kind="number", low=0.1, high=3600, unit="seconds"),
        Setting("kubelet-backoff-max", "300", "process kubelet back-off cap in seconds",
                kind="number", low=0.1, high=24 * 3600, unit="seconds"),
        Setting("allow-non-rehearsal", "0", "1 lets gameday act on targets not marked as rehearsal targets",
                kind="flag"),
    ]
}


def get(name: str) -> str:
    """The setting's value: its GAMEDAY_* variable when set (and not empty), checked, else the default."""
    setting = SETTINGS[name]
    value = os.environ.get(setting.env, "")
    if not value.strip():
        return setting.default
    return setting.check(value).strip()


def get_float(name: str) -> float:
    return float(get(name))


def get_int(name: str) -> int:
    return int(get(name))


def problems() -> list[ConfigError]:
    """Every setting whose GAMEDAY_* variable holds a value it does not accept."""
    found = []
    for name in SETTINGS:
        try:
            get(name)
        except ConfigError as exc:
            found.append(exc)
    return found


def validate_all() -> None:
    """Check every GAMEDAY_* setting before anything starts: the first bad one is a ConfigError."""
    found = problems()
    if found:
        raise found[0]
