"""Interrupts at random moments, many times: every run ends 130/143 within a bound, its journal
(when it got far enough to have one) says interrupted, and nothing it started is left: no
process carrying the run's mark in its environment, no temp folder it owned.

The schedule is seeded (the same moments every time); the moments fall in interpreter
start-up, collection, a real Postgres starting, seeding, and the scenario's work.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from gameday.lifecycle import OWNER_FILE, pid_alive, wait_until

pytestmark = pytest.mark.postgres

RUNS = 30

STEPS = """\
import time

import psycopg
from pytest_bdd import given, when

from gameday.database.local import LocalPostgres
from gameday.lifecycle import spawn

HELD = {}


@given("a scratch Postgres with rows")
def scratch():
    HELD["db"] = db = LocalPostgres("stress").start()
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20000) g")


@when("the scenario works a while")
def work():
    HELD["sleeper"] = spawn(["sleep", "300"], part="sleeper")
    time.sleep(20)
"""

FEATURE = """\
Feature: stress
  Scenario: interrupted somewhere
    Given a scratch Postgres with rows
    When the scenario works a while
"""


def marked_processes(mark: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"GAMEDAY_STRESS_MARK={mark}".encode() in (proc / "environ").read_bytes() and pid_alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def owned_dirs(pid: int) -> list[Path]:
    out = []
    for root in Path(tempfile.gettempdir()).glob("gameday-*"):
        try:
            if (root / OWNER_FILE).read_text().strip() == str(pid):
                out.append(root)
        except OSError:
            continue
    return out


def test_random_interrupts_leave_nothing_and_every_journal_says_interrupted(tmp_path: Path):
    (tmp_path / "stress_steps.py").write_text(STEPS)
    (tmp_path / "stress.feature").write_text(FEATURE)
    schedule = random.Random(20261205)
    outcomes = []
    for i in range(RUNS):
        mark = uuid.uuid4().hex
        signum = (signal.SIGINT, signal.SIGTERM)[i % 2]
        delay = schedule.uniform(0.2, 4.5)
        reports = tmp_path / f"reports-{i}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gameday.cli", "run", "stress.feature", "--steps", str(tmp_path / "stress_steps.py"),
             "--reports", str(reports), "--run-id", "r"],
            cwd=tmp_path, env={**os.environ, "GAMEDAY_STRESS_MARK": mark}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signum)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"run {i}: no exit 40 s after {signum.name} (sent {delay:.2f} s in)")
        # 130/143; or, when the signal came before Python ran any of gameday, death by it (-2/-15)
        assert code in (128 + signum, -signum), f"run {i}: exit {code} after {signum.name} at {delay:.2f} s"
        journal = reports / "r" / "journal.json"
        if journal.exists():
            assert json.loads(journal.read_text())["status"] == "interrupted", f"run {i} at {delay:.2f} s"
        wait_until(lambda m=mark: not marked_processes(m), timeout=10,  # noqa: B023
                   what=f"run {i}'s processes to be gone")
        assert owned_dirs(proc.pid) == [], f"run {i}: temp folders left"
        outcomes.append((round(delay, 2), signum.name, journal.exists()))
    assert sum(has_journal for _, _, has_journal in outcomes) >= RUNS // 3, outcomes  # most landed mid-run
