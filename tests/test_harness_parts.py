"""A harness part that dies mid-procedure makes the step an ERROR naming it, never the rollback's
FAILED: the harness could not do its job, so the rehearsed system is not judged.

The runs use a step module of their own: a real Postgres (the harness part a database
rehearsal stands on) killed with SIGKILL before a step that needs it, and a control where
the same step fails with everything alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.lifecycle import dead_parts, spawn, stop_process

STEPS = """\
import os
import signal

import psycopg
from pytest_bdd import given, then, when

from gameday.database.local import LocalPostgres
from gameday.errors import RehearsalFailed
from gameday.lifecycle import pid_alive, wait_until

SERVER = {}


@given("a scratch Postgres")
def scratch():
    SERVER["db"] = LocalPostgres("parts-test").start()


@when("its server is killed")
def kill():
    pid = SERVER["db"]._server.pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), timeout=10, what="the postmaster to die")


@then("the restored rows are counted")
def count():
    try:
        with psycopg.connect(SERVER["db"].dsn, connect_timeout=3) as conn:
            conn.execute("SELECT count(*) FROM missing_table")
    except psycopg.Error as exc:
        raise RehearsalFailed(f"restored copy unreadable: {str(exc).splitlines()[0]}") from None
"""

FEATURE = """\
Feature: harness parts
  Scenario: postgres dies under the restore check
    Given a scratch Postgres
    When its server is killed
    Then the restored rows are counted

  Scenario: the check fails with everything alive
    Given a scratch Postgres
    Then the restored rows are counted
"""


def test_a_dead_part_is_reported_once_and_a_stopped_one_never():
    killed = spawn(["sleep", "30"], part="fake-etcd")
    stopped = spawn(["sleep", "30"], part="fake-apiserver")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=10)  # not wait_until: it would (rightly) stop at the part's death it sees first
        stop_process(stopped, grace=1)
        assert dead_parts() == [f"fake-etcd (pid {killed.pid}) was killed by SIGKILL"]
        assert dead_parts() == []
    finally:
        stop_process(killed, grace=0)
        stop_process(stopped, grace=0)


@pytest.mark.postgres
def test_postgres_killed_mid_procedure_is_an_error_naming_it_and_a_real_failure_stays_failed(tmp_path: Path):
    (tmp_path / "part_steps.py").write_text(STEPS)
    (tmp_path / "parts.feature").write_text(FEATURE)
    result = subprocess.run(
        [sys.executable, "-m", "gameday.cli", "run", "parts.feature", "--steps", str(tmp_path / "part_steps.py"),
         "--reports", str(tmp_path / "reports"), "--run-id", "r1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, env=dict(os.environ))
    journal = json.loads((tmp_path / "reports" / "r1" / "journal.json").read_text())
    died, failed = journal["scenarios"]
    assert died["status"] == "error", died
    assert "harness part died during this step: postgres parts-test" in died["error"]
    assert "was killed by SIGKILL" in died["error"]
    assert failed["status"] == "failed" and "harness part" not in failed["error"], failed
    assert result.returncode == 2, result.stdout + result.stderr  # an ERROR: the harness could not do its job
