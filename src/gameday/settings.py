"""Every default gameday uses, each overridable by a GAMEDAY_* environment variable.

This table is the one place defaults are documented; `gameday settings` prints it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str

    @property
    def env(self) -> str:
        return "GAMEDAY_" + self.name.upper().replace("-", "_")


def _cache_home() -> str:
    return os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("reports", "reports", "directory that receives reports/<run-id>/"),
        Setting("cache", str(Path(_cache_home()) / "gameday"), "cache for built binaries (Kubernetes, etcd)"),
        Setting("pg-bindir", "", "PostgreSQL server binaries (default: `pg_config --bindir`)"),
        Setting("pg-user", "", "unprivileged OS user that runs local Postgres when gameday runs as root "
                "(default: postgres if that user exists, else nobody)"),
        Setting("pg-start-timeout", "30", "seconds to wait for a local Postgres to accept connections"),
        Setting("dump-format", "custom", "pg_dump format for snapshots: custom (measured faster here: benchmarks/database.py) or directory"),
        Setting("dump-jobs", "2", "parallel jobs for directory-format dumps and restores"),
        Setting("database", "", "database provider: local, container (Docker) or dsn; unset = container if a Docker "
                "daemon answers, else local"),
        Setting("cluster", "auto", "cluster provider: local, k3s (Docker) or kubeconfig; auto = Docker if a daemon "
                "answers, else local"),
        Setting("kubeconfig", "", "kubeconfig of an existing rehearsal cluster for the kubeconfig provider "
                "(default: $KUBECONFIG, else ~/.kube/config)"),
        Setting("kube-context", "", "context in that kubeconfig (default: its current context)"),
        Setting("config", "", "project file (gameday.yaml) to use; default: the nearest one upward from the working "
                "directory, else the shipped demo project"),
        Setting("images", "", "extra image catalog files for the embedded cluster and ECS tasks, separated by "
                "the path separator (:)"),
        Setting("aws", "moto", "AWS target: moto (local API, ECS tasks as processes) or real (only targets tagged "
                "gameday:rehearsal=true)"),
        Setting("aws-region", "us-east-1", "region of the local moto AWS"),
        Setting("moto-start-timeout", "30", "seconds to wait for the local moto server"),
        Setting("dsn", "", "connection string for the dsn database provider"),
        Setting("migrations-seed-rows", "1000", "rows per table the migration round-trip check seeds"),
        Setting("load-max-seconds", "120", "upper bound (locust --run-time) of a load run when the caller gives none"),
        Setting("load-user-rate", "10", "requests per second each simulated load user makes (0 = no pause)"),
        Setting("metrics-server", "0", "1 runs metrics-server (built by ./dev setup) in local clusters, for "
                "`kubectl top`; off by default, as it costs a process and scrapes every 15 s"),
        Setting("kubelet-backoff-base", "10", "process kubelet restart/image-pull back-off base in seconds (doubles per failure)"),
        Setting("kubelet-backoff-max", "300", "process kubelet back-off cap in seconds"),
        Setting("allow-non-rehearsal", "0", "1 lets gameday act on targets not marked as rehearsal targets"),
    ]
}


def get(name: str) -> str:
    setting = SETTINGS[name]
    return os.environ.get(setting.env, setting.default)


def get_float(name: str) -> float:
    return float(get(name))


def get_int(name: str) -> int:
    return int(get(name))
