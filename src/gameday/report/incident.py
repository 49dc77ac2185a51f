"""incident.md: each rehearsal written up as an incident record, rendered from the journal alone.

One section per scenario, in the shape a ticket or post-mortem takes: a timeline in UTC with
offsets from the bad deploy (the rollback timeline's marks, the commands run, what was measured),
the impact on traffic, time to rollback against the target the scenario states, and a sign-off
block filled from what was measured, with blanks for the people.  A scenario that failed, errored
or was interrupted says so and never reads as a success.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2

from gameday.journal import (
    EventRecord,
    JournalRecord,
    MeasurementRecord,
    ScenarioRecord,
    StepRecord,
    parse_time,
    redact,
)
from gameday.report.figures import (
    drift,
    events_of,
    fmt_measurement,
    md_cell,
    scenario_measurements,
    verdict_mark,
)
from gameday.timeline import PHASES

PHASE_NAMES = {p: "time to rollback (total)" if p == "total" else f"time to {p}" for p in PHASES}
# the figure that is "time to rollback" in each kind of rehearsal, best first
ROLLBACK_TIMES = ("time to rollback (total)", "ecs.rollback_time_to_stable", "rollback act time (alembic downgrade)",
                  "alembic downgrade act", "restore time (RTO)", "restore duration (RTO)")
FAULTS = ("bad-deploy", "ecs.deploy")  # events that are the bad deploy itself
QUIET = {"signals", "backtest", "baseline", "load-started", "load-stopped", "provider", *FAULTS}  # bookkeeping
MARKS = {"detected": "**Detected**: the alarm's condition holds from here on (measured on the requests)",
         "acted": "**Rollback started**: {action}",
         "stuck": "**Rollback failing**: the rollback cannot complete, so the runbook's escalation begins",
         "done": "**Rollout complete**: every rollout the on-call started has finished",
         "recovered": "**Recovered**: {recovery}"}
NOT_DONE = {"failed": "the rehearsal failed", "error": "the harness could not finish the rehearsal",
            "interrupted": "interrupted before the rehearsal finished", "skipped": "skipped, nothing was rehearsed",
            "running": "the rehearsal never finished"}

_TEMPLATE = """\
# Incident record: gameday run {{ j.run_id }}

Each section is one incident rehearsed by gameday, written up from the run's journal the way a ticket
or post-mortem records a real one. Clock times are UTC; T+ counts from the bad deploy (from the
scenario's start where it has none); commands and checks are listed when they finished.
*(simulated)* marks API state only (moto), not observed on real processes or data.

**Where it ran:** {{ environment }}
**Run:** {{ j.status }}, started {{ j.start[:19] | replace("T", " ") }} UTC
{%- if j.get("interrupted_by") %}, stopped by {{ j.interrupted_by }}{% endif %}

{% for x in incidents %}

## {{ x.mark }} {{ x.s.name }}

_{{ x.s.feature }}_ · {{ x.s.start[:10] }} · verdict: **{{ x.s.status }}**
{% if x.s.status != "passed" %}

> **{{ x.s.status | upper }}**: {{ x.not_done }}{{ " (%s)" % x.s.error if x.s.error }}.
> Nothing in this section shows a completed rollback.
{% endif %}

### Timeline

| UTC | T+ | What happened |
|---|---|---|
{% for clock, offset, what in x.rows %}
| {{ clock }} | {{ offset }} | {{ what }} |
{% endfor %}

### Impact

{% for line in x.impact %}
- {{ line }}
{% endfor %}

### Time to rollback

{% if x.rollback %}
**{{ fmt(x.rollback) }}**, measured as “{{ x.rollback.name }}”; {{ "target " if x.rollback.target is not none }}\
{{- against(x.rollback) }}
{% else %}
not measured: the scenario recorded no time to rollback
{% endif %}
{% if x.phases %}

| Phase | Measured | Target | Note |
|---|---|---|---|
{% for p, m in x.phases %}
| {{ p }} | {{ fmt(m) }} | {{ against(m) }} | {{ m.detail }} |
{% endfor %}
{% endif %}

### Sign-off

{% for ok, item in x.sign_off %}
- [{{ "x" if ok else " " }}] {{ item }}
{% endfor %}
{% endfor %}
"""


def render_incident(journal: JournalRecord) -> str:
    env = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, finalize=lambda v: md_cell(redact(str(v))))
    return env.from_string(_TEMPLATE).render(
        j=journal, environment=environment_line(journal.get("environment") or {}),
        incidents=[incident(s) for s in journal["scenarios"]], fmt=fmt_measurement, against=_against)


def incident(s: ScenarioRecord) -> dict[str, Any]:
    """What the record says about one scenario (a rehearsed incident)."""
    steps = s["steps"]
    fault, fault_event = next(((st, e) for st in steps for e in st["events"] if e["kind"] in FAULTS), (None, None))
    signals = next((e["data"] for e in events_of(s, "signals")), None)
    marks = (signals or {}).get("marks") or {}
    if fault is None and marks:  # a fault without an event of its own (e.g. a Service switched to a bad track)
        fault = next((st for st in steps if st["keyword"] == "When"), None)
    later = steps[steps.index(fault) + 1:] if fault else steps
    action = next((st for st in later if st["keyword"] == "When"), None)
    origin = parse_time(fault["start"] if fault else s["start"])
    at_mark = {}
    if signals and signals.get("origin") is not None:  # the marks' own clock: exact
        zero = datetime.fromtimestamp(signals["origin"], tz=UTC)
        at_mark = {name: zero + timedelta(seconds=at) for name, at in marks.items()}
        origin = at_mark.get("t0", origin)
    elif fault and "t0" in marks:  # older journals: the bad deploy's step start stands for t0
        at_mark = {name: origin + timedelta(seconds=at - marks["t0"]) for name, at in marks.items()}

    rows: list[tuple[datetime, str]] = []
    if fault:
        rows.append((origin, "**Bad deploy**: " + (fault_event["message"] if fault_event else _step(fault))))
    for name, label in MARKS.items():
        if name in at_mark:
            stable = (signals or {}).get("stable") or "the stable release"
            recovery = (signals or {}).get("recovery") or f"errors back down and every request served by {stable}"
            rows.append((at_mark[name], label.format(action=_step(action) if action else "the first on-call action",
                                                     recovery=recovery)))
    if "acted" not in at_mark and action:
        rows.append((parse_time(action["start"]), MARKS["acted"].format(action=_step(action))))
    for st in steps[steps.index(fault) if fault else 0:]:
        rows += _step_rows(st)
    rows.sort(key=lambda row: row[0])

    ms = scenario_measurements(s)
    named = {m["name"]: m for m in ms}
    rollback = min((m for m in ms if m["name"] in ROLLBACK_TIMES), default=None,
                   key=lambda m: (m["target"] is None, ROLLBACK_TIMES.index(m["name"])))
    return {"s": s, "mark": verdict_mark(s["status"]), "not_done": NOT_DONE.get(s["status"], s["status"]),
            "rows": [(at.strftime("%H:%M:%S"), f"{(at - origin).total_seconds():+.2f} s", what) for at, what in rows],
            "impact": _impact(s, signals), "rollback": rollback,
            "phases": [(phase, named[name]) for phase, name in PHASE_NAMES.items() if name in named],
            "sign_off": _sign_off(s, rollback, _validation(steps, at_mark.get("recovered"), action))}


def _step_rows(st: StepRecord) -> list[tuple[datetime, str]]:
    """A step's part of the timeline: what it ran, what it measured, and how it ended if not well."""
    shown = [e for e in st["events"] if e["kind"] not in QUIET and e["data"].get("during") != "teardown"]
    rows = [(_finished(st, e, shown[i + 1:]), _event_text(e)) for i, e in enumerate(shown)]
    rows += [(parse_time(m["at"]), f"measured {m['name']}: {fmt_measurement(m)}"
              + (f", target {_against(m)}" if m["target"] is not None else ""))
             for m in st["measurements"] if m["name"] not in PHASE_NAMES.values()]
    if st["status"] in NOT_DONE and st["status"] != "running":
        rows.append((parse_time(st["end"] or st["start"]), f"{verdict_mark(st['status'])} **{st['status']}** at "
                     f"“{_step(st)}”" + (f": {st['error']}" if st["error"] else "")))
    return rows


def _sign_off(s: ScenarioRecord, rollback: MeasurementRecord | None, validation: tuple[str, bool]) -> list[tuple[bool, str]]:
    """The checklist: ticked where what was measured is fine; the people's name and date left blank."""
    if s["status"] != "passed":
        success = f"**no** ({NOT_DONE.get(s['status'], s['status'])})"
    elif rollback is None:
        success = "**n/a** (no rollback was carried through in this scenario; its checks passed)"
    else:
        success = "**yes**"
    issues = [f"“{_step(st)}”: {st['error']}" for st in s["steps"] if st["error"] and st["status"] != "passed"]
    issues += [s["error"]] if s["error"] and not issues else []
    issues += [f"{m['name']} {fmt_measurement(m)} missed its target ({_against(m)})"
               for m in scenario_measurements(s) if m["passed"] is False]
    issues += [f"runbook line {d['line']}: {d['message']}" for d in drift(s) if d.get("drift", True)]
    took = f"{fmt_measurement(rollback)} ({_against(rollback)})" if rollback else "not measured"
    return [(success == "**yes**", f"Rollback successful: {success}"),
            (bool(rollback and rollback["passed"]), f"Time to rollback: {took}"),
            (validation[1] and s["status"] == "passed", f"Validation period: {validation[0]}"),
            (not issues, "Issues encountered: " + ("; ".join(dict.fromkeys(issues)) or "none recorded")),
            (False, "Signed off by: ____________________ Date: ____________")]


def _validation(steps: list[StepRecord], recovered: datetime | None, action: StepRecord | None) -> tuple[str, bool]:
    """How long the rollback was checked after it was done, and whether every check held."""
    after = recovered or (parse_time(action["end"]) if action and action["end"] else None)
    checks = [st for st in steps if after and parse_time(st["start"]) >= after] if recovered \
        else steps[steps.index(action) + 1:] if action else []
    if after is None or not checks:
        return "not reached: no check ran after the rollback", False
    end = max(parse_time(st["end"] or st["start"]) for st in checks)
    held = sum(st["status"] == "passed" for st in checks)
    return (f"{(end - after).total_seconds():.2f} s after {'recovery' if recovered else 'the rollback step'}, "
            f"{held} of {len(checks)} checks passed"), held == len(checks)


def _impact(s: ScenarioRecord, signals: dict[str, Any] | None) -> list[str]:
    """Failed requests from the bad deploy to recovery (or the end of traffic), from the signals' intervals."""
    series = (signals or {}).get("series") or []
    if not series:
        if events_of(s, "load-started"):
            return ["no load recorded (traffic ran, but the scenario ended before its signals were kept)"]
        return ["no load recorded: no traffic was sent, so no requests were counted"]
    marks, step = (signals or {}).get("marks") or {}, series[0]["t"]
    begin, end = marks.get("t0", 0.0), marks.get("recovered", series[-1]["t"])
    window = [p for p in series if p["t"] > begin and p["t"] - step < end]
    requests = sum(p["requests"] for p in window)
    failed = round(sum(p["requests"] * (p["error_rate"] or 0) for p in window))
    until = "until recovery" if "recovered" in marks else "to the end of traffic, with no recovery"
    return [f"{failed} of {requests} requests failed ({100 * failed / requests if requests else 0:.1f} %) from the "
            f"bad deploy {until} ({end - begin:.2f} s, counted in {step:g} s intervals)",
            f"worst interval: {100 * max((p['error_rate'] or 0 for p in window), default=0):.0f} % of requests failed"]


def _finished(step: StepRecord, event: EventRecord, after: list[EventRecord]) -> datetime:
    """When an event's action finished.  A runbook's steps are journaled once its section is done (or
    its check is): each finished at that moment or its step's end, less the steps run after it."""
    if event["kind"] != "runbook-step":
        return parse_time(event["at"])
    later = sum(e["data"]["duration_s"] for e in after if e["kind"] == "runbook-step" and e["at"] == event["at"])
    done = min(parse_time(event["at"]), parse_time(step["end"] or event["at"]))
    return done - timedelta(seconds=later)


def _event_text(e: EventRecord) -> str:
    data = e["data"]
    if e["kind"] == "kubectl":
        text = _code(e["message"]) + (f" (exit code {data['exit_code']})" if data.get("exit_code") else "")
    elif e["kind"] == "runbook-step":
        calls = [_code(c["command"]) + ("" if c["outcome"] == "ran" else f" ({c['outcome']})") for c in data["calls"]]
        text = (f"runbook line {data['line']} ({data['section']}): " + ("; ".join(calls) or _code(data["title"]))
                + f", {data['status']} after {data['duration_s']:.2f} s")
    elif e["kind"] in ("drift", "finding"):
        text = f"runbook {e['kind']}, {e['message']}"
    else:
        text = e["message"] + (f" ({data['observed']})" if data.get("observed") else "")
    return text + (" *(simulated)*" if data.get("fidelity") == "simulated" else "")


def _against(m: MeasurementRecord) -> str:
    if m["target"] is None:
        return "no target"
    return f"{'≤' if m['bound'] == 'max' else '≥'} {m['target']:g} {m['unit']}: {'met' if m['passed'] else 'MISSED'}"


def _step(step: StepRecord) -> str:
    return f"{step['keyword']} {step['name']}"


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def environment_line(env: dict[str, Any]) -> str:
    """Where the run happened, from the journal's environment."""
    parts = [f"{part}: {p['name']}" for part, p in (env.get("providers") or {}).items()]
    parts += [f"{label}{env[key]}" for key, label in (("kubernetes", "Kubernetes "), ("kubectl", "kubectl "),
                                                      ("postgresql", ""), ("gameday", "gameday ")) if env.get(key)]
    cores = (env.get("machine") or {}).get("cores")
    parts += [env["platform"] + (f", {cores} cores" if cores else "")] if env.get("platform") else []
    parts += [f"features at {rev}" for rev in (env.get("features") or {}).values() if rev]
    return " · ".join(parts) or "not recorded"
