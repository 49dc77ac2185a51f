"""Suite-wide hygiene shared by every test folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gameday import lifecycle


def _cancelled(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """A cancelled suite (a CI runner sends SIGTERM) stops as Ctrl-C does: the running test unwinds, so
    the `gameday run` it started is killed (subprocess.run kills its child on any exception) and its
    fixtures tear down, rather than leaving that run going on with no one waiting for it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _cancelled)


@pytest.fixture(autouse=True)
def _no_dead_part_outlives_its_test() -> Iterator[None]:
    """A harness part a test killed on purpose must not end the next test's waits."""
    yield
    lifecycle.dead_parts()


@dataclass
class LiveRun:
    """A finished `gameday run --live`: its exit code, what it printed, its journal."""

    code: int
    output: list[str]
    journal: dict[str, Any]

    @property
    def said(self) -> str:
        return "".join(self.output[-40:])

    def the_one_scenario(self) -> dict[str, Any]:
        [scenario] = self.journal["scenarios"]
        return scenario


def _live_game_day(tmp_path: Path, feature: str, handover: re.Pattern[str], act: Callable[..., None], *,
                   env: dict[str, str] | None = None, timeout: float = 400) -> LiveRun:
    """``gameday run --live`` on ``feature``; a person reads its output and at each hand-over line calls
    ``act(*handover.groups())``.  Hint and give-up far off unless ``env`` says otherwise."""
    (tmp_path / "live.feature").write_text(feature)
    run = subprocess.Popen(
        [sys.executable, "-m", "gameday.cli", "run", "--live", "live.feature", "--reports", str(tmp_path / "reports"),
         "--run-id", "live"], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1,
        env={**os.environ, "GAMEDAY_LIVE_HINT_AFTER": "600", "GAMEDAY_LIVE_GIVE_UP": "120", **(env or {})})
    output: list[str] = []

    def read() -> None:
        assert run.stdout is not None
        for line in run.stdout:
            output.append(line)
            found = handover.search(line)
            if found:
                act(*found.groups())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = run.wait(timeout=timeout)
    finally:
        if run.poll() is None:
            run.kill()
    reader.join(timeout=30)
    journal = json.loads((tmp_path / "reports" / "live" / "journal.json").read_text())
    return LiveRun(code, output, journal)


@pytest.fixture
def live_game_day() -> Callable[..., LiveRun]:
    """``live_game_day(tmp_path, feature, HANDOVER, act, env=...)``: a live game day with a scripted person."""
    return _live_game_day
