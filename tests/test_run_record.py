"""The record a post-mortem cites: a finished run's journal is closed and says what it ran on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gameday.journal import load, unclosed

STEPS = """\
import pytest
from pytest_bdd import given


@pytest.fixture
def scratch_part(journal):
    yield "part"
    journal.event("part-stopped", "the scenario's part was stopped")


@given("a step that holds")
def holds(scratch_part):
    pass
"""


def test_a_finished_runs_journal_is_closed_and_records_its_environment(tmp_path: Path):
    (tmp_path / "r_steps.py").write_text(STEPS)
    (tmp_path / "r.feature").write_text("Feature: record\n  Scenario: one\n    Given a step that holds\n")
    result = subprocess.run([sys.executable, "-m", "gameday.cli", "run", "r.feature", "--steps", "r_steps.py",
                             "--reports", "reports", "--run-id", "r1"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL, env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads((tmp_path / "reports" / "r1" / "journal.json").read_text())
    assert journal["end"] and journal["status"] == "passed"
    run = journal["run"]
    assert run["end"] is not None and run["status"] == "passed" and run["duration_s"] >= 0
    env = journal["environment"]
    assert env["gameday"] and env["python"] and env["machine"]["cores"] == os.cpu_count()
    assert env["machine"]["memory_bytes"] > 0
    assert env["postgresql"] is None or "PostgreSQL" in env["postgresql"]
    assert "kubectl" in env and "features" in env
    scenario = journal["scenarios"][0]
    # teardown belongs to its scenario, not to the run
    assert [(e["kind"], e["data"].get("during")) for e in scenario["events"]] == [("part-stopped", "teardown")]
    assert not [e for e in run["events"] if e["kind"] == "part-stopped"]
    assert unclosed(load(tmp_path / "reports" / "r1" / "journal.json")) == []

    # what a killed run leaves: the last journal it wrote, still open; `gameday report` renders it and says so
    killed = json.loads(json.dumps(journal))
    killed.update(end=None, status="running")
    killed["run"].update(end=None, duration_s=None, status="running")
    killed["scenarios"][0].update(end=None, duration_s=None, status="running")
    del killed["environment"]["kubectl"]
    (tmp_path / "reports" / "r1" / "journal.json").write_text(json.dumps(killed))
    assert unclosed(load(tmp_path / "reports" / "r1" / "journal.json")) == [
        "the run never ended", "run.end is missing", "run.duration_s is missing", "run.status is still running",
        "environment.kubectl is missing", "scenarios[0] (one) never ended"]
    rendered = subprocess.run([sys.executable, "-m", "gameday.cli", "report", "reports/r1"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    assert "is the record of a run that did not close (the run never ended; run.end is missing" in \
        " ".join(rendered.stdout.split()), rendered.stdout
