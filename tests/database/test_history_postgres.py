"""The history on a PostgreSQL server, so CI runners share it: what SQLite does, on a real local Postgres.

The same test bodies run on both stores (``backend``), two writers record at once without
corrupting either store, and a DSN that cannot be a history is refused before a run starts: one
line naming the DSN without its password, exit 2, nothing created.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import closing
from itertools import count
from pathlib import Path

import psycopg
import pytest

from gameday.database.local import LocalPostgres
from gameday.errors import ConfigError
from gameday.history import CONNECT_TIMEOUT_S, History
from gameday.lifecycle import free_port

pytestmark = pytest.mark.postgres

_databases = count()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
    """A new, empty store of the backend's kind per call: a file, or a database on the module's server."""

    def make() -> str:
        n = next(_databases)
        if backend == "sqlite":
            return str(tmp_path / f"history{n}.sqlite")
        server: LocalPostgres = request.getfixturevalue("server")
        return server.create_database(f"history_{n}")

    return make


def journal(run_id: str, start: str, act: float, status: str = "passed", scenarios: tuple[str, ...] = ("s",)) -> dict:
    return {"run_id": run_id, "start": start, "status": status, "environment": {"runner": "ci-1"}, "scenarios": [
        {"name": name, "status": status, "duration_s": 1.5, "steps": [],
         "measurements": [{"name": "act", "value": act, "unit": "s"}, {"name": "rows", "value": 5, "unit": "rows"}]}
        for name in scenarios]}


def test_record_regressions_and_scenario_runs_are_the_same_on_both_stores(fresh_store: Callable[[], str]):
    where = fresh_store()
    History.check(where)  # an empty store is fine
    store = History.open(where)
    assert store.scenarios() == [] and store.scenario_runs("s") == []
    store.record(journal("a", "2026-01-01T00:00:00", 0.01))
    assert store.regressions(journal("b", "2026-01-02T00:00:00", 5.0)) == []  # one earlier run is no trend
    store.record(journal("b", "2026-01-02T00:00:00", 0.01))
    assert store.regressions(journal("c", "2026-01-03T00:00:00", 0.02)) == []  # twice as slow, but by 0.01 s
    store.record(journal("x", "2026-01-02T12:00:00", 50.0, status="failed"))  # failed runs are not the yardstick
    found = store.regressions(journal("c", "2026-01-03T00:00:00", 1.0))
    assert [(r.scenario, r.figure, r.median, r.runs) for r in found] == [("s", "act", 0.01, 2)]

    # recording a run id again replaces the run, scenarios and figures included
    store.record(journal("x", "2026-01-02T12:00:00", 4.4, scenarios=("t", "s", "t")))
    runs = History.open(where).scenario_runs("s", last=10)
    assert [(r.run_id, r.status, r.figures, r.duration_s) for r in runs] == [
        ("a", "passed", {"act": 0.01}, 1.5), ("b", "passed", {"act": 0.01}, 1.5), ("x", "passed", {"act": 4.4}, 1.5)]
    assert store.scenarios() == ["s", "t"] and len(store.scenario_runs("t")) == 1  # "t" twice: the last one counts
    assert [r.run_id for r in store.scenario_runs("s", last=2)] == ["b", "x"]  # the last two, oldest first
    assert [r.run_id for r in store.scenario_runs("s", before="2026-01-02T12:00:00")] == ["a", "b"]
    assert store.scenario_runs("s", before="2026-01-01T00:00:00") == []
    History.check(where)  # a store gameday wrote is one


def test_two_writers_recording_at_once_corrupt_nothing(fresh_store: Callable[[], str], tmp_path: Path):
    """Two CI runners, each its own process, start on an empty store at the same moment (both create the
    tables) and record runs of their own and the same run ids: every run is whole, one writer's or the other's."""
    where, go = fresh_store(), tmp_path / "go"
    writer = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from gameday.history import History

        name, act = sys.argv[1], float(sys.argv[2])
        while not Path({str(go)!r}).exists():
            time.sleep(0.005)
        store = History.open({where!r})
        for i in range(20):
            for run_id in (f"{{name}}{{i}}", f"shared{{i}}"):
                store.record({{"run_id": run_id, "start": f"2026-01-01T00:00:{{i:02d}}", "status": "passed",
                               "environment": {{}}, "scenarios": [
                                   {{"name": s, "status": "passed", "duration_s": 1.0, "steps": [],
                                     "measurements": [{{"name": "act", "value": act, "unit": "s"}}]}}
                                   for s in ("s0", "s1", "s2")]}})
    """)
    writers = [subprocess.Popen([sys.executable, "-c", writer, name, act], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name, act in (("a", "1.0"), ("b", "2.0"))]
    time.sleep(1.0)  # both imported and waiting
    go.touch()
    for process in writers:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, out + err
    store = History.open(where)
    by_scenario = {s: {r.run_id: r.figures["act"] for r in store.scenario_runs(s, last=1000)}
                   for s in ("s0", "s1", "s2")}
    expected = {f"{n}{i}" for n in ("a", "b", "shared") for i in range(20)}
    assert all(set(runs) == expected for runs in by_scenario.values())
    for run_id in expected:  # each run as one writer recorded it, never a mix of both
        values = {by_scenario[s][run_id] for s in by_scenario}
        assert values in ({1.0}, {2.0}), (run_id, values)


def gameday(tmp_path: Path, *args: str, env: dict[str, str], act: float = 4.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, **env, "ACT_S": str(act)})


STEPS = """\
import os

from pytest_bdd import given


@given("the on-call rolls back")
def rolls_back(journal):
    journal.measure("time to act", float(os.environ["ACT_S"]), "s", target=60)
"""


def test_three_runs_on_a_shared_postgres_history(server: LocalPostgres, tmp_path: Path):
    (tmp_path / "d_steps.py").write_text(STEPS)
    (tmp_path / "d.feature").write_text("Feature: drill\n  Scenario: rollback drill\n    Given the on-call rolls back\n")
    dsn = server.create_database("history_runs").replace("gameday@", "gameday:hunter2@")  # trust: never checked
    env = {"GAMEDAY_HISTORY": dsn}
    none_yet = gameday(tmp_path, "history", env=env)  # only reads: creates nothing
    assert none_yet.returncode == 2 and "no game-day history at postgresql://gameday:***@" in none_yet.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    for run_id, act in (("r0", 4.0), ("r1", 4.4), ("r2", 9.0)):
        ran = gameday(tmp_path, "run", "d.feature", "--steps", "d_steps.py", "--run-id", run_id,
                      "--fail-on-regression", env=env, act=act)
        assert ran.returncode == (3 if run_id == "r2" else 0), ran.stdout + ran.stderr
    assert "regression: rollback drill: time to act 9.00 s" in " ".join(ran.stdout.split())
    shown = gameday(tmp_path, "history", env=env)
    assert shown.returncode == 0 and all(r in shown.stdout for r in ("r0", "r1", "r2", "↑")), shown.stderr
    page = (tmp_path / "reports" / "r2" / "trend.html").read_text()
    assert page.count("<svg") == 1 and all(r in page for r in ("r0", "r1", "r2")) and "gameday:***@" in page
    assert not (tmp_path / "reports" / "history.sqlite").exists()  # the server's, not a file
    written = [p.read_text(errors="replace") for p in (tmp_path / "reports").rglob("*") if p.is_file()]
    assert not any("hunter2" in text for text in [ran.stdout, ran.stderr, shown.stdout, *written])


@pytest.mark.parametrize("case", ["closed-port", "no-such-database", "not-a-history"])
def test_a_bad_dsn_is_refused_before_the_run_starts(server: LocalPostgres, tmp_path: Path, case: str):
    assert server.port is not None
    port, database, needle = server.port, "gameday", ""
    if case == "closed-port":
        port, needle = free_port(), "cannot connect"
    elif case == "no-such-database":
        database, needle = "no_such_db", 'database "no_such_db" does not exist'
    else:
        database, needle = "someone_elses", "is not a gameday history"
        with psycopg.connect(server.create_database(database), autocommit=True) as conn:
            conn.execute("CREATE TABLE runs (id serial PRIMARY KEY, started timestamptz)")
    dsn = f"postgresql://gameday:hunter2@127.0.0.1:{port}/{database}"
    (tmp_path / "d_steps.py").write_text(STEPS)
    (tmp_path / "d.feature").write_text("Feature: drill\n  Scenario: rollback drill\n    Given the on-call rolls back\n")
    for args in (("run", "d.feature", "--steps", "d_steps.py"), ("history",)):
        began = time.monotonic()
        refused = gameday(tmp_path, *args, env={"GAMEDAY_HISTORY": dsn})
        said = refused.stdout + refused.stderr
        assert refused.returncode == 2, said
        assert needle in said and f"postgresql://gameday:***@127.0.0.1:{port}/{database}" in said, said
        assert "hunter2" not in said and "Traceback" not in said and len(refused.stderr.strip().splitlines()) == 1
        assert "GAMEDAY_HISTORY" in refused.stderr  # the fix names what to change
        assert time.monotonic() - began < CONNECT_TIMEOUT_S + 20
    assert not (tmp_path / "reports").exists()  # refused before anything started


def test_a_server_that_never_answers_is_refused_within_the_connect_timeout():
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the connection is queued, never accepted, never answered
        dsn = f"postgresql://gameday:hunter2@127.0.0.1:{silent.getsockname()[1]}/gameday"
        began = time.monotonic()
        with pytest.raises(ConfigError) as refused:
            History.check(dsn)
        took = time.monotonic() - began
    assert took < CONNECT_TIMEOUT_S + 3, took
    assert "cannot connect" in refused.value.one_line() and "hunter2" not in refused.value.one_line()
