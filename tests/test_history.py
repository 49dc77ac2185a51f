"""Game days over time: runs are kept, `gameday history` shows them, a slower run is a regression."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gameday.history import History

STEPS = """\
import os

from pytest_bdd import given


@given("the on-call rolls back")
def rolls_back(journal):
    journal.measure("time to act", float(os.environ["ACT_S"]), "s", target=60)
    journal.measure("time to detect", 2.0, "s", target=60)
"""
FEATURE = "Feature: drill\n  Scenario: rollback drill\n    Given the on-call rolls back\n"


def run(tmp_path: Path, act: float, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", "run", "d.feature", "--steps", "d_steps.py",
                           "--reports", "reports", "--run-id", run_id, *extra], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "ACT_S": str(act)})


def test_three_runs_build_a_history_and_a_slower_third_is_a_regression(tmp_path: Path):
    (tmp_path / "d_steps.py").write_text(STEPS)
    (tmp_path / "d.feature").write_text(FEATURE)
    for i, act in enumerate((4.0, 4.4)):
        first = run(tmp_path, act, f"r{i}")
        assert first.returncode == 0 and "regression" not in first.stdout, first.stdout + first.stderr
    slower = run(tmp_path, 9.0, "r2", "--fail-on-regression")
    assert slower.returncode == 3, slower.stdout + slower.stderr
    assert "regression: rollback drill: time to act 9.00 s" in " ".join(slower.stdout.split())
    assert "time to detect" not in slower.stdout.split("regression:", 1)[1]  # unchanged figures are not
    shown = subprocess.run([sys.executable, "-m", "gameday.cli", "history", "--reports", "reports"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert shown.returncode == 0, shown.stderr
    assert all(r in shown.stdout for r in ("r0", "r1", "r2", "rollback drill", "time to act", "↑"))
    store = History.open(tmp_path / "reports" / "history.sqlite")
    assert [r.figures["time to act"] for r in store.scenario_runs("rollback drill")] == [4.0, 4.4, 9.0]


def journal(run_id: str, start: str, act: float, status: str = "passed") -> dict:
    return {"run_id": run_id, "start": start, "status": status, "environment": {}, "scenarios": [
        {"name": "s", "status": status, "duration_s": 1.0, "steps": [],
         "measurements": [{"name": "act", "value": act, "unit": "s"}, {"name": "rows", "value": 5, "unit": "rows"}]}]}


def test_regressions_need_a_trend_and_a_real_margin(tmp_path: Path):
    store = History.open(tmp_path / "h.sqlite")
    store.record(journal("a", "2026-01-01T00:00:00", 0.01))
    assert store.regressions(journal("b", "2026-01-02T00:00:00", 5.0)) == []  # one earlier run is no trend
    store.record(journal("b", "2026-01-02T00:00:00", 0.01))
    assert store.regressions(journal("c", "2026-01-03T00:00:00", 0.02)) == []  # twice as slow, but by 0.01 s
    store.record(journal("x", "2026-01-02T12:00:00", 50.0, status="failed"))  # failed runs are not the yardstick
    found = store.regressions(journal("c", "2026-01-03T00:00:00", 1.0))
    assert [(r.scenario, r.figure, r.median, r.runs) for r in found] == [("s", "act", 0.01, 2)]
