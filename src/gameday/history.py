"""Game days over time: every run's verdicts and timings, kept, compared, and judged for regressions.

The store is SQLite under the reports folder (``reports/history.sqlite``; GAMEDAY_HISTORY
names another file, e.g. on a share CI runners mount).  A run records each scenario's
verdict, its duration and every figure measured in seconds (detect, decide, act, recover,
total, a runbook section, time to stable).  A figure is a **regression** when it is worse
than the median of the same scenario's last N runs by more than the margin, both relative
and absolute (so 0.02 s against 0.01 s is not one):

    store = History.open(Path("reports/history.sqlite"))
    store.record(journal)                      # a loaded journal.json
    store.regressions(journal)                 # -> [Regression(...)] against the runs before it
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError
from gameday.paths import file_in_the_way
from gameday.report.figures import scenario_measurements

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, start TEXT NOT NULL, status TEXT NOT NULL,
                                 environment TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scenarios (run_id TEXT NOT NULL REFERENCES runs(run_id), scenario TEXT NOT NULL,
                                      status TEXT NOT NULL, duration_s REAL, PRIMARY KEY (run_id, scenario));
CREATE TABLE IF NOT EXISTS figures (run_id TEXT NOT NULL, scenario TEXT NOT NULL, name TEXT NOT NULL,
                                    value REAL NOT NULL, PRIMARY KEY (run_id, scenario, name));
"""
_FIX_STORE = "move it away (a new one is started) or point GAMEDAY_HISTORY elsewhere"
DEFAULT_WINDOW = 5  # runs the median is taken over
DEFAULT_MARGIN = 0.25  # worse than the median by more than 25 % ...
MIN_SECONDS = 0.5  # ... and by more than half a second


@dataclass(frozen=True)
class Regression:
    scenario: str
    figure: str
    value: float
    median: float
    runs: int  # how many earlier runs the median is over

    def line(self) -> str:
        worse = (self.value - self.median) / self.median if self.median else float("inf")
        return (f"{self.scenario}: {self.figure} {self.value:.2f} s, {worse:+.0%} against the median "
                f"{self.median:.2f} s of the last {self.runs} runs")


@dataclass(frozen=True)
class ScenarioRun:
    run_id: str
    start: str
    status: str
    duration_s: float | None
    figures: dict[str, float]


def _seconds(scenario: dict[str, Any]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for m in scenario_measurements(scenario):
        if m.get("unit") == "s" and isinstance(m.get("value"), int | float):
            figures.setdefault(m["name"], float(m["value"]))
    return figures


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def check(path: Path) -> None:
        """Refuse a store that cannot be one, before a run starts (nothing is created here)."""
        if path.exists() and not path.is_file():
            raise ConfigError(f"history store {path} is not a file", fix="point GAMEDAY_HISTORY at a file")
        blocking = file_in_the_way(path)
        if blocking is not None:
            raise ConfigError(f"history store {path}: {blocking} is a file, not a folder",
                              fix="point GAMEDAY_HISTORY at a file in a folder")
        if path.is_file() and path.stat().st_size:
            try:  # read-only: an existing store must be SQLite
                with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10)) as db:
                    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                raise ConfigError(f"history store {path} is not a gameday history: {exc}", fix=_FIX_STORE) from None

    @classmethod
    def open(cls, path: Path) -> History:
        cls.check(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        try:
            with store._db() as db:
                db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"history store {path} is not a gameday history: {exc}", fix=_FIX_STORE) from None
        return store

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
            yield db

    def record(self, journal: dict[str, Any]) -> None:
        """Keep one run (a journal.json's content); recording it again replaces it."""
        run_id = journal["run_id"]
        with self._db() as db:
            for table in ("figures", "scenarios", "runs"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608 - fixed names
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", (run_id, journal["start"], journal["status"],
                                                                 json.dumps(journal.get("environment", {}))))
            for scenario in journal.get("scenarios", []):
                name = scenario["name"]
                db.execute("INSERT OR REPLACE INTO scenarios VALUES (?, ?, ?, ?)",
                           (run_id, name, scenario["status"], scenario.get("duration_s")))
                for figure, value in _seconds(scenario).items():
                    db.execute("INSERT OR REPLACE INTO figures VALUES (?, ?, ?, ?)", (run_id, name, figure, value))

    def scenario_runs(self, scenario: str, *, before: str | None = None, last: int = DEFAULT_WINDOW) -> list[ScenarioRun]:
        """The scenario's last ``last`` runs (oldest first), only those that started before ``before``."""
        with self._db() as db:
            rows = db.execute(
                "SELECT r.run_id, r.start, s.status, s.duration_s FROM scenarios s JOIN runs r USING (run_id) "
                "WHERE s.scenario = ? AND (? IS NULL OR r.start < ?) ORDER BY r.start DESC LIMIT ?",
                (scenario, before, before, last)).fetchall()
            runs = []
            for run_id, start, status, duration in reversed(rows):
                figures = dict(db.execute("SELECT name, value FROM figures WHERE run_id = ? AND scenario = ?",
                                          (run_id, scenario)).fetchall())
                runs.append(ScenarioRun(run_id, start, status, duration, figures))
        return runs

    def scenarios(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT scenario FROM scenarios ORDER BY scenario")]

    def regressions(self, journal: dict[str, Any], *, window: int = DEFAULT_WINDOW, margin: float = DEFAULT_MARGIN,
                    min_seconds: float = MIN_SECONDS) -> list[Regression]:
        """Figures of this run worse than the median of the same scenario's previous passed runs."""
        found = []
        for scenario in journal.get("scenarios", []):
            earlier = [r for r in self.scenario_runs(scenario["name"], before=journal["start"], last=window)
                       if r.status == "passed"]
            for figure, value in _seconds(scenario).items():
                past = [r.figures[figure] for r in earlier if figure in r.figures]
                if len(past) < 2:
                    continue  # one earlier run is no trend
                median = statistics.median(past)
                if value > median * (1 + margin) and value - median > min_seconds:
                    found.append(Regression(scenario["name"], figure, value, median, len(past)))
        return found
