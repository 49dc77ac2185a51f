"""Game days over time: runs are kept, `gameday history` and trend.html show them, a slower run is a regression."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from matplotlib import pyplot as plt

from gameday import settings
from gameday.errors import ConfigError
from gameday.history import History, PostgresLocation
from gameday.report.trend import render_trend
from gameday.runner import history_path

STEPS = """\
import os

from pytest_bdd import given


@given("the on-call rolls back")
def rolls_back(journal):
    journal.measure("time to act", float(os.environ["ACT_S"]), "s", target=60)
    journal.measure("time to detect", 2.0, "s", target=60)


@given("the on-call watches")
def watches(journal):
    journal.measure("time to detect", 1.0, "s", target=60)
"""
FEATURE = ("Feature: drill\n  Scenario: rollback drill\n    Given the on-call rolls back\n"
           "  Scenario: steady drill\n    Given the on-call watches\n")


def run(tmp_path: Path, act: float, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", "run", "d.feature", "--steps", "d_steps.py",
                           "--reports", "reports", "--run-id", run_id, *extra], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "ACT_S": str(act)})


def gameday(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_three_runs_build_a_history_and_a_slower_third_is_a_regression(tmp_path: Path):
    (tmp_path / "d_steps.py").write_text(STEPS)
    (tmp_path / "d.feature").write_text(FEATURE)
    for i, act in enumerate((4.0, 4.4)):
        first = run(tmp_path, act, f"r{i}")
        assert first.returncode == 0 and "regression" not in first.stdout, first.stdout + first.stderr
        assert f"trend: {Path('reports', f'r{i}', 'trend.html')}" in first.stdout
    slower = run(tmp_path, 9.0, "r2", "--fail-on-regression")
    assert slower.returncode == 3, slower.stdout + slower.stderr
    assert "regression: rollback drill: time to act 9.00 s" in " ".join(slower.stdout.split())
    assert "time to detect" not in slower.stdout.split("regression:", 1)[1]  # unchanged figures are not
    shown = gameday(tmp_path, "history", "--reports", "reports")
    assert shown.returncode == 0, shown.stderr
    assert all(r in shown.stdout for r in ("r0", "r1", "r2", "rollback drill", "steady drill", "time to act", "↑"))
    store = History.open(tmp_path / "reports" / "history.sqlite")
    assert [r.figures["time to act"] for r in store.scenario_runs("rollback drill")] == [4.0, 4.4, 9.0]

    # the run's trend.html: one plot per scenario over the three runs, this run marked, the regression flagged
    page = (tmp_path / "reports" / "r2" / "trend.html").read_text()
    assert page.count("<svg") == 2 and all(r in page for r in ("r0", "r1", "r2"))
    assert '<tr class="current"><td>r2</td>' in page
    assert "regression: rollback drill: time to act 9.00 s" in " ".join(page.split())
    assert len(re.findall(r'class="regressed"', page)) == 1  # time to act of r2, nothing else
    assert "report.html" in page and '<a href="trend.html">' in (tmp_path / "reports" / "r2" / "report.html").read_text()
    # `gameday history --html` writes the same page for the whole store
    written = gameday(tmp_path, "history", "--reports", "reports", "--html", "all.html", "-k", "rollback")
    assert written.returncode == 0 and "trend: all.html" in written.stdout, written.stdout + written.stderr
    whole = (tmp_path / "all.html").read_text()
    assert whole.count("<svg") == 1 and "steady drill" not in whole and "r2" in whole and 'class="current"' not in whole
    assert "regression: rollback drill: time to act 9.00 s" in " ".join(whole.split())  # the newest run's
    refused = gameday(tmp_path, "history", "--reports", "reports", "--html", "nowhere/all.html")
    assert refused.returncode == 2 and "--html nowhere/all.html: folder" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "nowhere").exists()


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


def test_the_trend_page_is_bounded_marks_failed_runs_and_leaks_no_figure(tmp_path: Path):
    store = History.open(tmp_path / "h.sqlite")
    for i in range(60):  # a scenario with many runs: the page draws the last 20
        status = "failed" if i == 50 else "passed"
        store.record(journal(f"run{i:02d}", f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00", 9.0 if i == 59 else 1.0,
                             status))
    figures_before = plt.get_fignums()
    began = time.monotonic()
    page = render_trend(store, current="run59")
    took = time.monotonic() - began
    assert plt.get_fignums() == figures_before  # nothing left open in pyplot
    assert took < 30, took  # bounded: 20 points, however long the history
    shown = set(re.findall(r"<td>(run\d\d)</td>", page))
    assert shown == {f"run{i}" for i in range(40, 60)}, sorted(shown)
    assert page.count("<svg") == 1 and "20 (older ones kept)" in page
    assert '<tr class="current"><td>run59</td>' in page
    assert re.search(r"<td>run50</td>\s*<td>[^<]*</td><td class=\"verdict failed\">", page)
    assert 'class="regressed" title="median 1.00 s of the 5 passed runs before"' in page
    assert render_trend(History.open(tmp_path / "empty.sqlite")).count("No runs recorded yet") == 1


@pytest.mark.parametrize(("value", "problem"), [
    ("mysql://db/gameday", "not a file path or a postgresql:// URL"),
    ("host=db dbname=gameday", "a key=value connection string"),
    ("postgresql://gd:hunter2@db:notaport/gameday", "invalid host or port"),
])
def test_the_history_setting_takes_a_file_or_a_postgresql_url(monkeypatch: pytest.MonkeyPatch, value: str,
                                                                problem: str):
    monkeypatch.setenv("GAMEDAY_HISTORY", value)
    with pytest.raises(ConfigError) as refused:
        settings.get("history")
    assert problem in refused.value.one_line() and "hunter2" not in refused.value.one_line()
    assert refused.value.one_line().startswith("GAMEDAY_HISTORY=")
    monkeypatch.setenv("GAMEDAY_HISTORY", "postgresql://gd:hunter2@db:5433/gameday")
    where = history_path(Path("reports"))
    assert isinstance(where, PostgresLocation) and str(where) == "postgresql://gd:***@db:5433/gameday"
    monkeypatch.setenv("GAMEDAY_HISTORY", "shared/history.sqlite")
    assert history_path(Path("reports")) == Path("shared/history.sqlite")


def test_a_sqlite_file_of_another_application_is_refused_before_a_run(tmp_path: Path):
    import sqlite3

    with sqlite3.connect(tmp_path / "app.sqlite") as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, started TEXT)")
    with pytest.raises(ConfigError, match="is not a gameday history: no such column"):
        History.check(tmp_path / "app.sqlite")
