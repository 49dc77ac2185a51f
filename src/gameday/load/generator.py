"""LoadGenerator: real locust, headless, as a subprocess, with every request recorded.

    profile = LoadProfile(users=5, requests=(RequestSpec(path="/api/cart", expect=(200,)),),
                          release=ReleaseReader(header="X-App-Version"))
    with LoadGenerator("http://127.0.0.1:18080", profile=profile, max_seconds=60) as load:
        ...                                  # deploy, break, roll back
        signals = golden_signals(load.records(), now=time.time(), window_seconds=10)

locust runs the profile's workload, either gameday.load.declared (the declared requests)
or the team's own locustfile unchanged, together with gameday.load.recorder, which
appends one JSON line per request to ``<workdir>/requests.jsonl``; ``records()`` follows
that file.  A team's locustfile is imported once in a short subprocess first, so one that
does not import is a one-line ConfigError before any load starts.  The run is always
bounded: locust's own ``--run-time`` is ``max_seconds``, and stop() sends SIGTERM so
locust stops its users and exits, then SIGKILL after a grace.  If the harness itself is
killed outright (SIGKILL: no cleanup runs), the kernel kills locust with it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gameday import settings
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import (
    Provider,
    forget_part,
    spawn,
    stop_process,
    tail,
    temp_dir,
    wait_until,
    watch_part,
)
from gameday.load.profile import ENV_RECORDS, LoadProfile
from gameday.load.records import RecordReader, RequestRecord
from gameday.load.signals import GoldenSignals, golden_signals

DECLARED = Path(__file__).with_name("declared.py")
RECORDER = Path(__file__).with_name("recorder.py")
CHECK_TIMEOUT_S = 15.0  # a locustfile that takes longer to import is reported as such

# Imports a locustfile the way locust does (its own loader, gevent patched first) and prints
# one marked JSON line: the error, or the User classes found.
_CHECK = """
import json, os, sys
def report(**data):
    print("GAMEDAY-CHECK " + json.dumps(data), flush=True)
    os._exit(0)  # threads or greenlets the locustfile started must not keep this check alive
try:
    import locust
    from locust.util.load_locustfile import load_locustfile
    users, _shapes = load_locustfile(sys.argv[1])
except BaseException as exc:
    text = str(exc).strip()
    report(error=type(exc).__name__, first=text.splitlines()[0] if text else "")
else:
    report(users=sorted(users))
"""


def check_locustfile(path: Path, *, cwd: Path | None = None, timeout: float = CHECK_TIMEOUT_S) -> list[str]:
    """Import ``path`` in a short subprocess as locust would; its User class names, or one
    ConfigError line: ``locustfile PATH does not import: ExcType: first line``."""
    fix = f"run `python {path}` to see the whole error, then fix the locustfile (or load.locustfile in the project file)"
    if not path.is_file():
        raise ConfigError(f"locustfile {path} does not import: FileNotFoundError: no such file", fix=fix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_LOAD_")}
    try:
        done = subprocess.run([sys.executable, "-c", _CHECK, str(path)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"locustfile {path} does not import: TimeoutError: still importing after {timeout:g}s",
                          fix="make the locustfile's imports quick (no network calls at import time)") from None
    marked = [line for line in done.stdout.splitlines() if line.startswith("GAMEDAY-CHECK ")]
    if not marked:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise ConfigError(f"locustfile {path} does not import: {last}", fix=fix)
    result = json.loads(marked[-1].removeprefix("GAMEDAY-CHECK "))
    if "error" in result:
        detail = f"{result['error']}: {result['first']}" if result["first"] else result["error"]
        raise ConfigError(f"locustfile {path} does not import: {detail}", fix=fix)
    if not result["users"]:
        raise ConfigError(f"locustfile {path} defines no User class",
                          fix="give it a class deriving from locust's HttpUser or FastHttpUser")
    return list(result["users"])


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
    """Runs ``profile`` against ``url`` (127.0.0.0/8 only) for at most ``max_seconds``.

    ``spawn_rate``: users started per second (default: all within a second).
    """

    name = "load"

    def __init__(
        self,
        url: str,
        *,
        profile: LoadProfile,
        max_seconds: float | None = None,
        spawn_rate: float | None = None,
        workdir: Path | None = None,
        record: bool = True,
        journal: Journal | None = None,
    ) -> None:
        self.url = check_local_url(url)
        if not isinstance(profile, LoadProfile):
            raise ConfigError(f"load profile {profile!r} is not a LoadProfile",
                              fix="give LoadGenerator(url, profile=LoadProfile(...))")
        self.profile = profile
        self.spawn_rate = float(spawn_rate if spawn_rate is not None else profile.users)
        if self.spawn_rate <= 0:
            raise ConfigError(f"load spawn_rate={self.spawn_rate:g} must be > 0", fix="e.g. spawn_rate equal to users")
        self.max_seconds = float(max_seconds if max_seconds is not None else settings.get("load-max-seconds"))
        if not 0 < self.max_seconds <= 24 * 3600:
            raise ConfigError(f"load max_seconds={self.max_seconds:g} out of range", fix="give 1 s to 24 h")
        self.workdir = workdir
        self.record = record
        self.journal = journal
        self.started_at: float | None = None
        self._proc: Any = None
        self._reader: RecordReader | None = None

    @property
    def users(self) -> int:
        return self.profile.users

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LoadGenerator:
        if self._proc is not None:
            return self
        if self.workdir is None:
            self.workdir = temp_dir("load")
        self.workdir.mkdir(parents=True, exist_ok=True)
        workload = self.profile.locustfile
        if workload is not None:
            check_locustfile(workload, cwd=self.workdir)  # before any load: one line, not a traceback
        else:
            workload = DECLARED
        records = self.workdir / "requests.jsonl"
        records.touch()
        self._reader = RecordReader(records)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_LOAD_")}
        env.update(self.profile.to_env())
        if self.record:
            env[ENV_RECORDS] = str(records)
        run_time = max(1, round(self.max_seconds))
        argv = [
            sys.executable, "-m", "locust", "-f", f"{workload},{RECORDER}", "--headless", "--only-summary",
            "-u", str(self.users), "-r", f"{self.spawn_rate:g}", "--host", self.url,
            "--run-time", f"{run_time}s", "--stop-timeout", "1",
            "--exit-code-on-error", "0", "--loglevel", "WARNING",
        ]
        self.started_at = time.time()
        # die_with_harness: a harness killed outright (SIGKILL, OOM) must not leave locust loading the service
        self._proc = spawn(argv, log=self.log, env=env, cwd=self.workdir, grace=5, die_with_harness=True)
        # a harness part until its --run-time is up: ending then is its planned end, not a death
        watch_part("locust (the load generator)", self._proc, ends_after=time.monotonic() + run_time - 1)
        if self.record:
            # Ready = locust is up and traffic flows (a refused connection is a record too).
            wait_until(self._first_record, timeout=30, what=f"locust load on {self.url}", logs=lambda: tail(self.log))
        if self.journal is not None:
            self.journal.event("load-started", f"locust: {self.profile.describe()} on {self.url} for at most "
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
        forget_part(self._proc)  # ending by itself is what is waited for here
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
