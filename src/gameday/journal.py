"""The run journal: the one record every report renders from.

A run holds scenarios, a scenario holds steps, and measurements and events attach to
whichever step is current when the engine records them.  Each measurement says
whether it was observed on real processes and data (``real``) or is only API state
(``simulated``, e.g. moto), so reports never present the two as the same thing.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Required

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict


class Status(StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"  # the rehearsed system failed a check
    ERROR = "error"  # the harness could not do its job
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


class Fidelity(StrEnum):
    REAL = "real"
    SIMULATED = "simulated"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


_SECRET_PATTERNS = [
    # scheme://user:password@host
    (re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)"), r"\1***\2"),
    # password=..., PGPASSWORD=..., token: ...
    (
        re.compile(r"(?i)\b((?:pg)?password|passwd|secret|token|aws_secret_access_key)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)"),
        r"\1\2***",
    ),
]


def redact(text: str) -> str:
    """Remove passwords and tokens from any text headed for a report."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_tree(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    return value


@dataclass
class Measurement:
    name: str
    value: float
    unit: str
    fidelity: Fidelity = Fidelity.REAL
    target: float | None = None
    # "max": value must stay <= target; "min": value must reach >= target
    bound: str = "max"
    at: str = field(default_factory=utcnow)
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.bound == "max" else self.value >= self.target

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fidelity"] = self.fidelity.value
        data["passed"] = self.passed
        return data


@dataclass
class Event:
    kind: str
    message: str
    at: str = field(default_factory=utcnow)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Activity:
    """A step or a scenario: something with a start, an end and a status."""

    name: str
    start: str = field(default_factory=utcnow)
    end: str | None = None
    status: Status = Status.RUNNING
    error: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.end is None:
            return None
        return (parse_time(self.end) - parse_time(self.start)).total_seconds()

    def finish(self, status: Status, error: str | None = None) -> None:
        self.end = utcnow()
        self.status = status
        if error:
            self.error = error

    def _base_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": self.start,
            "end": self.end,
            "duration_s": self.duration_s,
            "status": self.status.value,
            "error": self.error,
            "measurements": [m.to_dict() for m in self.measurements],
            "events": [asdict(e) for e in self.events],
        }


@dataclass
class Step(Activity):
    keyword: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"keyword": self.keyword, **self._base_dict()}


@dataclass
class Scenario(Activity):
    feature: str = ""
    tags: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    test_id: str = ""  # the pytest node that ran it

    def all_measurements(self) -> Iterator[Measurement]:
        yield from self.measurements
        for step in self.steps:
            yield from step.measurements

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "tags": self.tags,
            "test_id": self.test_id,
            **self._base_dict(),
            "steps": [s.to_dict() for s in self.steps],
        }


class Journal:
    """The record of one run.  Engine code calls :meth:`measure` and :meth:`event`;
    the pytest plugin opens and closes scenarios and steps around them."""

    def __init__(self, run_id: str | None = None, environment: dict[str, Any] | None = None) -> None:
        from gameday.paths import safe_name

        self.run_id = safe_name(run_id, "run id") if run_id else new_run_id()
        self.start = utcnow()
        self.end: str | None = None
        self.status = Status.RUNNING
        self.environment: dict[str, Any] = dict(environment or {})
        self.scenarios: list[Scenario] = []
        # measurements and events recorded outside any scenario (e.g. `gameday db verify-backup`)
        self.loose = Activity(name="run")
        self.tearing_down: Scenario | None = None  # the scenario whose fixtures are being torn down
        self._at_scenario_end: list[Callable[[], None]] = []
        self.interrupted_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run

    # -- structure ---------------------------------------------------------
    @property
    def current_scenario(self) -> Scenario | None:
        if self.scenarios and self.scenarios[-1].end is None:
            return self.scenarios[-1]
        return None

    @property
    def current(self) -> Activity:
        scenario = self.current_scenario
        if scenario is None:
            # a finished scenario's fixtures tearing down still belong to it
            return self.tearing_down if self.tearing_down is not None else self.loose
        if scenario.steps and scenario.steps[-1].end is None:
            return scenario.steps[-1]
        return scenario

    @property
    def open_step(self) -> Step | None:
        scenario = self.current_scenario
        if scenario is not None and scenario.steps and scenario.steps[-1].end is None:
            return scenario.steps[-1]
        return None

    def begin_scenario(self, name: str, feature: str = "", tags: list[str] | None = None, test_id: str = "") -> Scenario:
        self.tearing_down = None
        scenario = Scenario(name=name, feature=feature, tags=list(tags or []), test_id=test_id)
        self.scenarios.append(scenario)
        return scenario

    def begin_step(self, keyword: str, text: str) -> Step:
        scenario = self.current_scenario
        if scenario is None:
            scenario = self.begin_scenario("(no scenario)")
        step = Step(name=text, keyword=keyword)
        scenario.steps.append(step)
        return step

    def at_scenario_end(self, action: Callable[[], None]) -> None:
        """Run ``action`` just before the current scenario closes, pass or fail (e.g. to
        record the traffic it saw while the journal still points at the scenario)."""
        self._at_scenario_end.append(action)

    def scenario_ending(self) -> None:
        actions, self._at_scenario_end = self._at_scenario_end, []
        for action in actions:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - a recorder must never change the verdict
                self.event("journal-error", f"could not record at scenario end: {exc}")

    # -- recording ---------------------------------------------------------
    def measure(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        fidelity: Fidelity = Fidelity.REAL,
        target: float | None = None,
        bound: str = "max",
        detail: str = "",
    ) -> Measurement:
        measurement = Measurement(
            name=name, value=value, unit=unit, fidelity=fidelity, target=target, bound=bound, detail=detail
        )
        self.current.measurements.append(measurement)
        return measurement

    def event(self, kind: str, message: str, **data: Any) -> Event:
        target = self.current
        if target is self.tearing_down:
            data = {**data, "during": "teardown"}
        event = Event(kind=kind, message=message, data=data)
        target.events.append(event)
        return event

    def interrupt(self, signal_name: str, test_id: str | None = None) -> None:
        """A signal (``"SIGINT"``, ``"SIGTERM"``) stopped the run.

        The run is INTERRUPTED, and so is what it cut short: any open step, any open
        scenario and the scenario of ``test_id`` (the pytest node that was running), even
        when pytest-bdd's after-scenario hook already closed that as passed while the
        interrupt unwound.  A scenario that had already failed keeps its verdict.
        """
        message = f"interrupted by {signal_name}"
        if self.interrupted_by is None:
            self.interrupted_by = signal_name
            self.loose.events.append(Event(kind="interrupted", message=message, data={"signal": signal_name}))
        self.status = Status.INTERRUPTED
        running = [s for s in reversed(self.scenarios) if test_id and s.test_id == test_id][:1]
        for scenario in {id(s): s for s in [*running, *(s for s in self.scenarios if s.end is None)]}.values():
            for step in scenario.steps:
                if step.end is None:
                    step.finish(Status.INTERRUPTED, message)
            if scenario.end is None:
                scenario.finish(Status.INTERRUPTED, message)
            elif scenario.status == Status.PASSED:
                scenario.status, scenario.error = Status.INTERRUPTED, message

    def stop_early(self, reason: str) -> None:
        """The run stops after the current scenario (a harness part every scenario needs died):
        said once, on the run's own record, so every report can say why scenarios are missing."""
        if not any(e.kind == "run-stopped" for e in self.loose.events):
            self.loose.events.append(Event(kind="run-stopped", message=reason, data={}))

    def finish(self, status: Status | None = None) -> None:
        if status is None and self.interrupted_by is not None:
            status = Status.INTERRUPTED
        self.end = utcnow()
        if status is not None:
            self.status = status
        elif not self.scenarios:
            self.status = Status.FAILED if self.loose.status == Status.FAILED else Status.PASSED
        elif any(s.status == Status.ERROR for s in self.scenarios):
            self.status = Status.ERROR
        elif any(s.status == Status.FAILED for s in self.scenarios):
            self.status = Status.FAILED
        else:
            self.status = Status.PASSED
        if self.loose.end is None:  # the run's own record is closed with the run
            self.loose.finish(self.status)

    # -- persistence ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _redact_tree(
            {
                "schema": SCHEMA,
                "run_id": self.run_id,
                "start": self.start,
                "end": self.end,
                "status": self.status.value,
                "interrupted_by": self.interrupted_by,
                "environment": self.environment,
                "scenarios": [s.to_dict() for s in self.scenarios],
                "run": self.loose._base_dict(),
            }
        )

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "journal.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        os.replace(tmp, path)  # never leave a half-written journal behind
        return path


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


# -- the read side: what a journal.json holds, typed and checked when it is read ---------------
SCHEMA = "gameday.journal/1"
_READ = ConfigDict(extra="allow", strict=True)  # newer keys are kept; nothing is coerced


@with_config(_READ)
class MeasurementRecord(TypedDict, total=False):
    name: Required[str]
    value: Required[float]
    unit: str
    fidelity: str  # "real" | "simulated"
    target: float | None
    bound: str  # "max" | "min"
    passed: bool | None
    at: str
    detail: str


@with_config(_READ)
class EventRecord(TypedDict, total=False):
    kind: Required[str]
    message: str
    at: str
    data: dict[str, Any]


@with_config(_READ)
class ActivityRecord(TypedDict, total=False):
    name: Required[str]
    status: Required[str]
    measurements: Required[list[MeasurementRecord]]
    events: Required[list[EventRecord]]
    start: str
    end: str | None
    error: str | None


@with_config(_READ)
class StepRecord(ActivityRecord, total=False):
    keyword: str
    duration_s: float | None


@with_config(_READ)
class ScenarioRecord(ActivityRecord, total=False):
    duration_s: Required[float | None]
    steps: Required[list[StepRecord]]
    feature: str
    tags: list[str]
    test_id: str


@with_config(_READ)
class JournalRecord(TypedDict, total=False):
    schema: Required[str]
    run_id: Required[str]
    status: Required[str]
    start: Required[str]
    scenarios: Required[list[ScenarioRecord]]
    end: str | None
    interrupted_by: str | None
    environment: dict[str, Any]
    run: ActivityRecord


def load(path: Path) -> JournalRecord:
    """Read a journal written by :meth:`Journal.write`, checked against :class:`JournalRecord`.

    Anything else (a missing, empty, truncated or corrupt file, JSON that is not a gameday
    journal or lacks what the reports render) is bad input: a ConfigError naming the file."""
    from pydantic import TypeAdapter, ValidationError

    from gameday.errors import ConfigError

    fix = "pass the reports/<run-id>/ folder of a finished run (its journal.json is written by gameday)"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text, so not a gameday journal", fix=fix) from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror or exc}", fix=fix) from None
    if not text.strip():
        raise ConfigError(f"{path} is empty", fix=fix)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                          "it may be truncated", fix=fix) from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a gameday journal", fix=fix) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError(f"{path} is not a gameday journal (no \"schema\": \"{SCHEMA}\")", fix=fix)
    try:
        return TypeAdapter(JournalRecord).validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a complete gameday journal: {_first_problem(data, exc)}", fix=fix) from None


ENVIRONMENT = ("gameday", "python", "platform", "machine", "features", "kubectl", "postgresql")


def unclosed(record: JournalRecord) -> list[str]:
    """What keeps a run's journal from being the record a post-mortem cites, one phrase each:
    the run or its own entry never closed, what it ran on not recorded, a scenario left open.
    Empty for a finished run; a killed run (SIGKILL, power cut) leaves the last journal it wrote."""
    gaps: list[str] = []
    if not record.get("end") or record["status"] == "running":
        gaps.append("the run never ended")
    run = record.get("run")
    if run is None:
        gaps.append("run is missing")
    else:
        gaps += [f"run.{key} is missing" for key in ("end", "duration_s") if run.get(key) is None]
        if run["status"] == "running":
            gaps.append("run.status is still running")
    env = record.get("environment") or {}
    gaps += [f"environment.{key} is missing" for key in ENVIRONMENT if key not in env]
    machine = env.get("machine") or {}
    gaps += [f"environment.machine.{key} is missing" for key in ("cores", "memory_bytes") if not machine.get(key)]
    for part, chosen in (env.get("providers") or {}).items():
        if not (isinstance(chosen, dict) and chosen.get("name") and chosen.get("why")):
            gaps.append(f"environment.providers.{part} does not say which provider and why")
    if "cluster" in (env.get("providers") or {}) and not env.get("kubernetes"):
        gaps.append("environment.kubernetes (the server version) is missing")
    for i, scenario in enumerate(record["scenarios"]):
        if scenario.get("end") is None or scenario["status"] == "running" or scenario["duration_s"] is None:
            gaps.append(f"scenarios[{i}] ({scenario['name']}) never ended")
    return gaps


_WANTED = {"float_type": "int or float", "int_type": "int", "string_type": "str", "list_type": "list",
           "dict_type": "object", "bool_type": "bool", "typed_dict_type": "object", "model_type": "object"}


def _first_problem(data: Any, exc: Any) -> str:
    """pydantic's first error in our words: "scenarios[0].steps is missing", "...value is str, not int or float"."""
    error = exc.errors()[0]
    where, value = "", data
    for key in error["loc"]:
        inside = (isinstance(value, dict) and key in value) or (isinstance(value, list) and isinstance(key, int)
                                                                 and 0 <= key < len(value))
        if error["type"] == "missing" and not inside and isinstance(key, str):
            return f"{where}{'.' if where else ''}{key} is missing"
        if not inside:
            break  # what is left names a member of a union, not a place in the file
        where += f"[{key}]" if isinstance(key, int) else f"{'.' if where else ''}{key}"
        value = value[key]
    wanted = _WANTED.get(error["type"], error["msg"])
    found = "an object" if isinstance(value, dict) else type(value).__name__
    return f"{where or 'the journal'} is {found}, not {wanted}"
