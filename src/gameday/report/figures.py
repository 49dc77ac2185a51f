"""Formatting of measurements shared by the markdown summary and the console table."""

from __future__ import annotations

from typing import Any

from gameday.journal import EventRecord, MeasurementRecord, ScenarioRecord

_MARKS = {"passed": "✅", "failed": "❌", "error": "⚠️", "interrupted": "⏹", "skipped": "⏭", "running": "…"}


def verdict_mark(status: str) -> str:
    return _MARKS.get(status, "?")


def fmt_measurement(m: MeasurementRecord) -> str:
    value = m["value"]
    text = f"{value:.2f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"
    suffix = " (simulated)" if m["fidelity"] == "simulated" else ""
    return f"{text} {m['unit']}{suffix}"


def scenario_measurements(scenario: ScenarioRecord) -> list[MeasurementRecord]:
    """A journal scenario's own measurements, then its steps' in order."""
    found = list(scenario["measurements"])
    for step in scenario["steps"]:
        found += step["measurements"]
    return found


def headline(scenario: ScenarioRecord, limit: int = 3) -> str:
    """The scenario's key figures: those with targets first (missed ones first of all)."""
    found = scenario_measurements(scenario)
    targeted = [m for m in found if m["target"] is not None]
    # missed targets first, then the headline of a rollback rehearsal: its total time
    targeted.sort(key=lambda m: (m["passed"] is not False, m["name"] != "time to rollback (total)"))
    chosen = targeted[:limit] or found[:limit]
    parts = []
    for m in chosen:
        part = f"{m['name']} {fmt_measurement(m)}"
        if m["target"] is not None:
            part += f" ({'≤' if m['bound'] == 'max' else '≥'} {m['target']:g}{' MISSED' if m['passed'] is False else ''})"
        parts.append(part)
    return "; ".join(parts) or "—"


def events_of(scenario: ScenarioRecord, kind: str) -> list[EventRecord]:
    """Every event of ``kind`` in a scenario, its own and its steps'."""
    found = [e for e in scenario.get("events", []) if e["kind"] == kind]
    for step in scenario.get("steps", []):
        found += [e for e in step.get("events", []) if e["kind"] == kind]
    return found


def runbook_steps(scenario: ScenarioRecord) -> list[dict[str, Any]]:
    """The runbook view of a scenario: each runbook step run in it (line, status, time, output)."""
    return [e["data"] for e in events_of(scenario, "runbook-step")]


def drift(scenario: ScenarioRecord) -> list[dict[str, Any]]:
    """Drift and other findings of a runbook run in the scenario, by line."""
    return sorted((e["data"] for e in events_of(scenario, "drift") + events_of(scenario, "finding")),
                  key=lambda d: (not d.get("drift", True), d.get("line", 0)))


def backtest(scenario: ScenarioRecord) -> list[dict[str, Any]]:
    """The scenario's alert and rollback rules replayed on its own traffic (see gameday.load.backtest),
    each row with its cells said for a table: fires at, false alarms, and the same at low traffic."""
    rows = []
    for event in events_of(scenario, "backtest"):
        for row in event["data"]["rows"]:
            def when(at: float | None) -> str:
                return "never" if at is None else f"T+{at:.2f} s"
            rows.append({**row, "fires": when(row["fires_at"]), "low_fires": when(row["low_traffic_fires_at"])})
    return rows


PHASES = ("before", "incident", "acting", "after")


def endpoint_errors(scenario: ScenarioRecord) -> list[dict[str, Any]]:
    """Requests and failures per endpoint and phase (before the release, during it, while the on-call
    acted, after), each cell said for a table: "2.1 % of 340", or "" for a phase that did not happen."""
    rows = []
    for event in events_of(scenario, "endpoints"):
        for row in event["data"]["rows"]:
            cells = {}
            for phase in PHASES:
                seen = row["phases"].get(phase)
                rate = None if seen is None else seen["error_rate"]
                cells[phase] = "" if seen is None else ("no request" if rate is None
                                                        else f"{rate * 100:.1f} % of {seen['requests']}")
            rows.append({"endpoint": row["endpoint"], **cells})
    return rows


def md_cell(text: object) -> str:
    """Text made safe for one markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
