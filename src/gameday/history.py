"""Game days over time: every run's verdicts and timings, kept, compared, and judged for regressions.

The store is SQLite under the reports folder (``reports/history.sqlite``) unless GAMEDAY_HISTORY
names another file, or a PostgreSQL server (``postgresql://user@host:5432/gameday``) so the CI
runners of a team share one history.  Both hold the same tables and answer the same queries;
only how they connect differs (``SqliteStore``, ``PostgresStore``).  A run records each
scenario's verdict, its duration and every figure measured in seconds (detect, decide, act,
recover, total, a runbook section, time to stable), in one transaction.  A figure is a
**regression** when it is worse than the median of the same scenario's last N passed runs by
more than the margin, both relative and absolute (so 0.02 s against 0.01 s is not one):

    store = History.open(Path("reports/history.sqlite"))   # or History.open(location("postgresql://..."))
    store.record(journal)                      # a loaded journal.json
    store.regressions(journal)                 # -> [Regression(...)] against the runs before it
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.errors import ConfigError
from gameday.paths import file_in_the_way
from gameday.report.figures import scenario_measurements

if TYPE_CHECKING:
    from gameday.database.dsn import Dsn
    from gameday.journal import JournalRecord, ScenarioRecord

# One schema for both stores (DOUBLE PRECISION: PostgreSQL's REAL would round 4.4 to 4.400000095).
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, start TEXT NOT NULL, status TEXT NOT NULL,
                                 environment TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scenarios (run_id TEXT NOT NULL REFERENCES runs(run_id), scenario TEXT NOT NULL,
                                      status TEXT NOT NULL, duration_s DOUBLE PRECISION,
                                      PRIMARY KEY (run_id, scenario));
CREATE TABLE IF NOT EXISTS figures (run_id TEXT NOT NULL, scenario TEXT NOT NULL, name TEXT NOT NULL,
                                    value DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, scenario, name));
"""
# What an existing store must answer to be a gameday history (checked before a run).
_COLUMNS = {"runs": "run_id, start, status, environment", "scenarios": "run_id, scenario, status, duration_s",
            "figures": "run_id, scenario, name, value"}
DSN_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_WINDOW = 5  # runs the median is taken over
DEFAULT_MARGIN = 0.25  # worse than the median by more than 25 % ...
MIN_SECONDS = 0.5  # ... and by more than half a second
CONNECT_TIMEOUT_S = 5  # a PostgreSQL store that does not answer within this is refused before a run


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


@dataclass(frozen=True)
class PostgresLocation:
    """A history kept on a PostgreSQL server.  Printed, it is the DSN without its password."""

    dsn: Dsn

    def __str__(self) -> str:
        return self.dsn.redacted()


Location = Path | PostgresLocation


def location(value: str | Path) -> Location:
    """Where a history is: a postgresql:// DSN (missing parts from PG* variables, e.g. PGPASSWORD), else a file."""
    if isinstance(value, str) and value.strip().startswith(DSN_SCHEMES):
        from gameday.database.dsn import Dsn

        return PostgresLocation(Dsn.parse(value.strip()))
    return Path(value)


def _seconds(scenario: ScenarioRecord) -> dict[str, float]:
    figures: dict[str, float] = {}
    for m in scenario_measurements(scenario):
        if m.get("unit") == "s" and isinstance(m.get("value"), int | float):
            figures.setdefault(m["name"], float(m["value"]))
    return figures


def judge(scenario: str, figures: dict[str, float], earlier: Sequence[ScenarioRun], *,
          margin: float = DEFAULT_MARGIN, min_seconds: float = MIN_SECONDS) -> list[Regression]:
    """The figures worse than the median of the passed runs among ``earlier`` (a failed run is no yardstick)."""
    passed = [r for r in earlier if r.status == "passed"]
    found = []
    for figure, value in figures.items():
        past = [r.figures[figure] for r in passed if figure in r.figures]
        if len(past) < 2:
            continue  # one earlier run is no trend
        median = statistics.median(past)
        if value > median * (1 + margin) and value - median > min_seconds:
            found.append(Regression(scenario, figure, value, median, len(past)))
    return found


class _Session:
    """One transaction on a store; SQL is written with ``?`` placeholders, whatever the store's own style."""

    def __init__(self, connection: Any, placeholder: str) -> None:
        self.connection = connection
        self.placeholder = placeholder

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.connection.execute(sql.replace("?", self.placeholder), tuple(params))
        return list(cursor.fetchall()) if cursor.description is not None else []


def _reason(exc: BaseException) -> str:
    from gameday.journal import redact

    return redact(" ".join(str(exc).split())) or type(exc).__name__


class Store(ABC):
    """How one kind of store is reached.  The queries are History's: a store connects, locks and lists tables."""

    placeholder = "?"
    order = ""  # what makes ORDER BY on ISO timestamps (text) chronological
    fix = ""  # how to fix a store that is not a gameday history
    errors: tuple[type[Exception], ...] = ()

    def check(self) -> None:
        """Refuse a store that cannot be one, before a run starts (nothing is created here)."""
        if not self.may_exist():
            return
        try:
            with self.connect(read_only=True) as session:
                present = self.tables(session)
                for table, columns in _COLUMNS.items():  # another application's tables are not ours
                    if table in present:
                        session.rows(f"SELECT {columns} FROM {table} LIMIT 0")  # noqa: S608 - fixed names
        except self.errors as exc:
            raise ConfigError(f"history store {self} is not a gameday history: {_reason(exc)}", fix=self.fix) from None

    def may_exist(self) -> bool:
        """Whether there may be a store to look into (a file that is not there need not be opened)."""
        return True

    def exists(self) -> bool:
        """Whether the store has been created (by a first recorded run)."""
        with self.connect(read_only=True) as session:
            return "runs" in self.tables(session)

    def prepare(self) -> None:
        """Whatever must exist before the schema can be created: nothing, for a server."""
        return None

    @abstractmethod
    def connect(self, *, read_only: bool = False) -> AbstractContextManager[_Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""

    def lock(self, session: _Session) -> None:
        """Serialise writers for the rest of the transaction (schema creation, a record); SQLite's own write
        lock does it there."""
        return None

    @abstractmethod
    def tables(self, session: _Session) -> set[str]:
        """The names of the tables in the store."""


class SqliteStore(Store):
    fix = "move it away (a new one is started) or point GAMEDAY_HISTORY elsewhere"
    errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def check(self) -> None:
        path = self.path
        if path.exists() and not path.is_file():
            raise ConfigError(f"history store {path} is not a file", fix="point GAMEDAY_HISTORY at a file")
        blocking = file_in_the_way(path)
        if blocking is not None:
            raise ConfigError(f"history store {path}: {blocking} is a file, not a folder",
                              fix="point GAMEDAY_HISTORY at a file in a folder")
        super().check()  # read-only: an existing store must be SQLite, with our tables

    def may_exist(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def exists(self) -> bool:
        return self.path.is_file()

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[_Session]:
        target, uri = (f"{self.path.absolute().as_uri()}?mode=ro", True) if read_only else (str(self.path), False)
        with closing(sqlite3.connect(target, uri=uri, timeout=10)) as db, db:
            yield _Session(db, self.placeholder)

    def tables(self, session: _Session) -> set[str]:
        return {r[0] for r in session.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}


class PostgresStore(Store):
    placeholder = "%s"
    order = ' COLLATE "C"'  # the database's own collation may skip a timestamp's punctuation
    fix = "name a database of its own in GAMEDAY_HISTORY, or unset it for <reports>/history.sqlite"
    _UNREACHABLE_FIX = ("check host, port, user, password (or PGPASSWORD) and database in GAMEDAY_HISTORY, "
                        "or unset it for <reports>/history.sqlite")
    _LOCK = 0x67616D65646179  # pg_advisory_xact_lock key: one writer at a time, across CI runners

    def __init__(self, where: PostgresLocation) -> None:
        import psycopg

        self.where = where
        self.errors = (psycopg.Error,)

    def __str__(self) -> str:
        return str(self.where)  # never the password

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[_Session]:
        import psycopg

        try:
            connection = psycopg.connect(self.where.dsn.conninfo(), connect_timeout=CONNECT_TIMEOUT_S,
                                         application_name="gameday history")
        except psycopg.Error as exc:
            raise ConfigError(f"history store {self}: cannot connect: {_reason(exc)}",
                              fix=self._UNREACHABLE_FIX) from None
        with connection:  # commits at the end of the block, rolls back if it raises; then closes
            connection.read_only = read_only
            yield _Session(connection, self.placeholder)

    def lock(self, session: _Session) -> None:
        session.rows("SELECT pg_advisory_xact_lock(?)", (self._LOCK,))

    def tables(self, session: _Session) -> set[str]:
        return {r[0] for r in session.rows("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def store_for(where: Location | str) -> Store:
    where = location(where) if isinstance(where, str) else where
    return PostgresStore(where) if isinstance(where, PostgresLocation) else SqliteStore(where)


class History:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def check(where: Location | str) -> None:
        """Refuse a store that cannot be one, before a run starts: a file that is not a gameday history,
        a DSN whose server does not answer (within CONNECT_TIMEOUT_S) or refuses us.  Nothing is created."""
        store_for(where).check()

    @classmethod
    def open(cls, where: Location | str, *, create: bool = True) -> History:
        """The store, its tables created when missing; ``create=False``: a ConfigError when there is none yet."""
        store = store_for(where)
        store.check()
        if not create:  # only read: nothing is created (a reader may not be allowed to)
            if not store.exists():
                raise ConfigError(f"no game-day history at {store}",
                                  fix="run `gameday run` first (each run is kept there)")
            return cls(store)
        store.prepare()
        history = cls(store)
        with history._session(write=True) as session:
            for statement in filter(str.strip, SCHEMA.split(";")):
                session.rows(statement)
        return history

    def __str__(self) -> str:
        return str(self.store)

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[_Session]:
        try:
            with self.store.connect() as session:
                if write:
                    self.store.lock(session)
                yield session
        except self.store.errors as exc:
            raise ConfigError(f"history store {self.store}: {_reason(exc)}", fix=self.store.fix) from None

    def record(self, journal: JournalRecord) -> None:
        """Keep one run (a journal.json's content), in one transaction; recording it again replaces it."""
        run_id = journal["run_id"]
        scenarios = {s["name"]: s for s in journal.get("scenarios", [])}  # a name twice: the last one counts
        with self._session(write=True) as db:
            for table in ("figures", "scenarios", "runs"):
                db.rows(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608 - fixed names
            db.rows("INSERT INTO runs VALUES (?, ?, ?, ?)", (run_id, journal["start"], journal["status"],
                                                             json.dumps(journal.get("environment", {}))))
            for name, scenario in scenarios.items():
                db.rows("INSERT INTO scenarios VALUES (?, ?, ?, ?)",
                        (run_id, name, scenario["status"], scenario.get("duration_s")))
                for figure, value in _seconds(scenario).items():
                    db.rows("INSERT INTO figures VALUES (?, ?, ?, ?)", (run_id, name, figure, value))

    def scenario_runs(self, scenario: str, *, before: str | None = None, last: int = DEFAULT_WINDOW) -> list[ScenarioRun]:
        """The scenario's last ``last`` runs (oldest first), only those that started before ``before``."""
        order = self.store.order
        since = f" AND r.start{order} < ?" if before is not None else ""
        with self._session() as db:
            rows = db.rows(
                "SELECT r.run_id, r.start, s.status, s.duration_s FROM scenarios s JOIN runs r USING (run_id) "
                f"WHERE s.scenario = ?{since} ORDER BY r.start{order} DESC, r.run_id{order} DESC LIMIT ?",
                (scenario, *((before,) if before is not None else ()), last))
            figures: dict[str, dict[str, float]] = {row[0]: {} for row in rows}
            if rows:
                marks = ", ".join("?" * len(rows))
                for run_id, name, value in db.rows(
                        f"SELECT run_id, name, value FROM figures WHERE scenario = ? AND run_id IN ({marks})",  # noqa: S608
                        (scenario, *figures)):
                    figures[run_id][name] = value
        return [ScenarioRun(run_id, start, status, duration, figures[run_id])
                for run_id, start, status, duration in reversed(rows)]

    def scenarios(self) -> list[str]:
        with self._session() as db:
            return [r[0] for r in db.rows(
                f"SELECT scenario FROM scenarios GROUP BY scenario ORDER BY scenario{self.store.order}")]

    def regressions(self, journal: JournalRecord, *, window: int = DEFAULT_WINDOW, margin: float = DEFAULT_MARGIN,
                    min_seconds: float = MIN_SECONDS) -> list[Regression]:
        """Figures of this run worse than the median of the same scenario's previous passed runs."""
        found = []
        for scenario in journal.get("scenarios", []):
            earlier = self.scenario_runs(scenario["name"], before=journal["start"], last=window)
            found += judge(scenario["name"], _seconds(scenario), earlier, margin=margin, min_seconds=min_seconds)
        return found
