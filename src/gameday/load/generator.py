"""LoadGenerator: real locust, headless, as a subprocess, with every request recorded.

    with LoadGenerator("http://127.0.0.1:18080", users=5, max_seconds=60) as load:
        ...                                  # deploy, break, roll back
        signals = golden_signals(load.records(), now=time.time(), window_seconds=10)

locust runs our locustfile (gameday/load/locustfile.py), which appends one JSON line
per request to ``<workdir>/requests.jsonl``; ``records()`` follows that file.  The run
is always bounded: locust's own ``--run-time`` is ``max_seconds`` (mandatory), and
stop() sends SIGTERM so locust stops its users and exits, then SIGKILL after a grace.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gameday import settings
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import Provider, spawn, stop_process, tail, temp_dir, wait_until
from gameday.load.records import RecordReader, RequestRecord
from gameday.load.signals import GoldenSignals, golden_signals

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def check_local_url(url: str) -> str:
    """Only http(s) URLs on 127.0.0.0/8 (or localhost): gameday never sends load elsewhere."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host) in _LOOPBACK
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise ConfigError(f"load target {url!r} is not an http URL on 127.0.0.0/8",
                          fix="point the load at a local service, e.g. http://127.0.0.1:18080")
    return url.rstrip("/")


class LoadGenerator(Provider):
    name = "load"

    def __init__(
        self,
        url: str,
        *,
        users: int = 5,
        spawn_rate: float = 5,
        max_seconds: float | None = None,
        user_rate: float | None = None,
        workdir: Path | None = None,
        record: bool = True,
        journal: Journal | None = None,
    ) -> None:
        self.url = check_local_url(url)
        if not 1 <= users <= 1000:
            raise ConfigError(f"load users={users} is out of range", fix="give 1 to 1000 users")
        if spawn_rate <= 0:
            raise ConfigError(f"load spawn_rate={spawn_rate} must be > 0", fix="e.g. spawn_rate equal to users")
        self.users = users
        self.spawn_rate = spawn_rate
        self.max_seconds = float(max_seconds if max_seconds is not None else settings.get("load-max-seconds"))
        if not 0 < self.max_seconds <= 24 * 3600:
            raise ConfigError(f"load max_seconds={self.max_seconds:g} out of range", fix="give 1 s to 24 h")
        self.user_rate = float(user_rate if user_rate is not None else settings.get("load-user-rate"))
        self.workdir = workdir
        self.record = record
        self.journal = journal
        self.started_at: float | None = None
        self._proc: Any = None
        self._reader: RecordReader | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LoadGenerator:
        if self._proc is not None:
            return self
        if self.workdir is None:
            self.workdir = temp_dir("load")
        self.workdir.mkdir(parents=True, exist_ok=True)
        records = self.workdir / "requests.jsonl"
        records.touch()
        self._reader = RecordReader(records)
        env = dict(os.environ, GAMEDAY_LOAD_USER_RATE=f"{self.user_rate:g}")
        env.pop("GAMEDAY_LOAD_RECORDS", None)
        if self.record:
            env["GAMEDAY_LOAD_RECORDS"] = str(records)
        argv = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(self.users), "-r", f"{self.spawn_rate:g}", "--host", self.url,
            "--run-time", f"{max(1, round(self.max_seconds))}s", "--stop-timeout", "1",
            "--exit-code-on-error", "0", "--loglevel", "WARNING",
        ]
        self.started_at = time.time()
        self._proc = spawn(argv, log=self.log, env=env, cwd=self.workdir, grace=5)
        if self.record:
            # Ready = locust is up and traffic flows (a refused connection is a record too).
            wait_until(self._first_record, timeout=30, what=f"locust load on {self.url}", logs=lambda: tail(self.log))
        if self.journal is not None:
            self.journal.event("load-started", f"locust: {self.users} users on {self.url} for at most "
                               f"{self.max_seconds:g}s", users=self.users, url=self.url)
        return self

    def _first_record(self) -> bool:
        if self._proc.poll() is not None:
            raise EnvironmentNotReady(f"locust exited with code {self._proc.returncode}: {tail(self.log, 5)}")
        return bool(self._reader and self._reader.read())

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process(proc, grace=5)
        if self.journal is not None:
            count = len(self.records())
            self.journal.event("load-stopped", f"locust stopped after {count} requests", requests=count)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for locust to end by itself (its --run-time); returns its exit code."""
        if self._proc is None:
            return None
        limit = timeout if timeout is not None else self.max_seconds + 15
        wait_until(lambda: self._proc.poll() is not None, timeout=limit, what="locust to finish",
                   logs=lambda: tail(self.log))
        return int(self._proc.returncode)

    def endpoints(self) -> dict[str, Any]:
        return {"url": self.url, "records": str(self.records_path), "log": str(self.log)}

    # -- data --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> Path:
        assert self.workdir is not None, "load generator not started"
        return self.workdir / "locust.log"

    @property
    def records_path(self) -> Path:
        assert self.workdir is not None, "load generator not started"
        return self.workdir / "requests.jsonl"

    def records(self, since: float | None = None) -> list[RequestRecord]:
        """Every request so far (sorted by time), or those at/after ``since`` (epoch s)."""
        if self._reader is None:
            return []
        return self._reader.read(since)

    def signals(self, window_seconds: float = 10.0) -> GoldenSignals:
        """Golden signals over the last ``window_seconds``, now."""
        now = time.time()
        return golden_signals(self.records(since=now - window_seconds), now=now, window_seconds=window_seconds)
