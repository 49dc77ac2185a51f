"""report.html: the run for people, with a timeline of what the traffic saw.

Rendered from the journal alone: a scenario whose journal holds a ``signals`` event
(golden signals per second, recorded by a rehearsal under load) gets a plot of error
rate and of the share of requests the stable release served, with the rollback's
marks (bad deploy, alarm, rollback issued, rollout complete, recovered) drawn on it.
"""

from __future__ import annotations

import io
from typing import Any

import jinja2

from gameday.journal import JournalRecord, ScenarioRecord
from gameday.report.figures import (
    backtest,
    drift,
    endpoint_errors,
    fmt_measurement,
    runbook_steps,
    scenario_measurements,
    verdict_mark,
)

_MARK_LABELS = {"t0": "bad deploy", "detected": "alarm", "acted": "rollback issued", "done": "rollout complete",
                "recovered": "recovered", "stuck": "rollback seen failing"}

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gameday run {{ j.run_id }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
.passed{color:#17803d}.failed{color:#b42318}.error,.interrupted{color:#b54708}.simulated{color:#6941c6}
svg{max-width:100%;height:auto}
</style></head><body>
<h1>gameday run {{ j.run_id }}</h1>
<p class="{{ j.status }}"><strong>{{ j.status | upper }}</strong> · started {{ j.start }}</p>
<p>Across runs: <a href="trend.html">trend.html</a> (each scenario's time to rollback over its last runs, from
the history) · for the ticket: <a href="incident.md">incident.md</a></p>
<table><tr><th>Scenario</th><th>Verdict</th><th>Duration</th></tr>
{% for s in j.scenarios %}<tr><td><a href="#s{{ loop.index }}">{{ s.name }}</a></td>
<td class="{{ s.status }}">{{ mark(s.status) }} {{ s.status }}</td><td>{{ "%.1f" | format(s.duration_s or 0) }} s</td></tr>
{% endfor %}</table>
{% for s in j.scenarios %}
<h2 id="s{{ loop.index }}" class="{{ s.status }}">{{ mark(s.status) }} {{ s.name }}</h2>
<p><em>{{ s.feature }}</em></p>
{% if s.error %}<p class="{{ s.status }}">{{ s.error }}</p>{% endif %}
{% set plot = plots[loop.index0] %}{% if plot %}{{ plot | safe }}{% endif %}
<table><tr><th></th><th>Step</th><th>Time</th></tr>
{% for st in s.steps %}<tr><td>{{ mark(st.status) }}</td><td>{{ st.keyword }} {{ st.name }}
{% if st.error %}<br><span class="{{ st.status }}">{{ st.error }}</span>{% endif %}</td>
<td>{{ "%.2f" | format(st.duration_s or 0) }} s</td></tr>
{% endfor %}</table>
{% set ms = measurements(s) %}{% if ms %}
<table><tr><th>Measurement</th><th>Value</th><th>Target</th><th>Verdict</th></tr>
{% for m in ms %}<tr><td>{{ m.name }}</td><td class="{{ m.fidelity }}">{{ fmt(m) }}</td>
<td>{% if m.target is not none %}{{ "≤" if m.bound == "max" else "≥" }} {{ m.target }} {{ m.unit }}{% endif %}</td>
<td>{% if m.passed is not none %}{{ "met" if m.passed else "MISSED" }}{% endif %}</td></tr>
{% endfor %}</table>{% endif %}
{% set bt = backtest(s) %}{% if bt %}
<h3>Backtest of the rules</h3>
<p><small>Each rule replayed on this scenario's traffic at a 0.5 s evaluation interval; low traffic keeps one request in N.</small></p>
<table><tr><th>Rule</th><th>Would fire</th><th>False alarms when healthy</th><th>At low traffic: fires</th><th>False alarms</th><th>Requests per window</th></tr>
{% for r in bt %}<tr><td>{{ r.rule }}</td><td>{{ r.fires }}</td><td>{{ r.false_alarms }} in {{ r.healthy_s }} s</td>
<td>{{ r.low_fires }} (1 in {{ r.low_traffic_one_in }})</td><td>{{ r.low_traffic_false_alarms }}</td><td>{{ r.low_traffic_per_window }}</td></tr>
{% endfor %}</table>{% endif %}
{% set ep = endpoint_errors(s) %}{% if ep %}
<h3>Failed requests per endpoint</h3>
<table><tr><th>Endpoint</th><th>Before the release</th><th>Incident</th><th>While acting</th><th>After</th></tr>
{% for r in ep %}<tr><td>{{ r.endpoint }}</td><td>{{ r.before }}</td><td>{{ r.incident }}</td><td>{{ r.acting }}</td><td>{{ r.after }}</td></tr>
{% endfor %}</table>{% endif %}
{% set rb = runbook_steps(s) %}{% if rb %}
<h3>Runbook steps</h3>
<table><tr><th>Line</th><th>Status</th><th>Time</th><th>Step</th><th>Output (end)</th></tr>
{% for r in rb %}<tr><td>{{ r.line }}</td><td class="{{ 'passed' if r.status == 'passed' else ('failed' if r.status in ('failed', 'timeout', 'skipped') else '') }}">{{ r.status }}</td>
<td>{{ "%.2f" | format(r.duration_s) }} s</td><td>{{ r.title }}{% if r.reason %}<br><small>{{ r.reason }}</small>{% endif %}</td>
<td><pre>{{ r.output[-400:] }}</pre></td></tr>
{% endfor %}</table>{% endif %}
{% set found = drift(s) %}{% if found %}
<h3>Runbook findings</h3><ul>
{% for f in found %}<li class="{{ 'failed' if f.drift else '' }}">line {{ f.line }} · {{ f.kind }}: {{ f.message }}</li>
{% endfor %}</ul>{% endif %}
{% endfor %}
</body></html>
"""


def render_html(journal: JournalRecord) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    plots = [timeline_svg(s) for s in journal["scenarios"]]
    return env.from_string(_TEMPLATE).render(j=journal, plots=plots, mark=verdict_mark, fmt=fmt_measurement,
                                             measurements=scenario_measurements,
                                             runbook_steps=runbook_steps, drift=drift, backtest=backtest, endpoint_errors=endpoint_errors)


def _signals(scenario: ScenarioRecord) -> dict[str, Any] | None:
    for step in scenario["steps"]:
        for event in step["events"]:
            if event["kind"] == "signals":
                return event["data"]  # type: ignore[no-any-return]
    for event in scenario["events"]:
        if event["kind"] == "signals":
            return event["data"]  # type: ignore[no-any-return]
    return None


def timeline_svg(scenario: ScenarioRecord) -> str | None:
    """An SVG of error rate and stable-release share per second, or None without signals."""
    data = _signals(scenario)
    if not data or not data.get("series"):
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on a CI machine
    from matplotlib import pyplot as plt

    series = data["series"]
    times = [p["t"] for p in series]
    errors = [None if p["error_rate"] is None else 100 * p["error_rate"] for p in series]
    stable = data.get("stable")
    share = [100 * p["versions"].get(stable, 0.0) if p["requests"] else None for p in series]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True)
    top.plot(times, [e if e is not None else float("nan") for e in errors], color="#b42318", drawstyle="steps-pre")
    top.set_ylabel("errors %")
    bottom.plot(times, [s if s is not None else float("nan") for s in share], color="#17803d", drawstyle="steps-pre")
    bottom.set_ylabel(f"{stable} %" if stable else "stable %")
    bottom.set_xlabel("seconds since traffic started")
    for axis in (top, bottom):
        axis.set_ylim(-5, 105)
        axis.grid(alpha=0.3)
    for name, at in sorted(data.get("marks", {}).items(), key=lambda item: item[1]):
        for axis in (top, bottom):
            axis.axvline(at, color="#555", linestyle="--", linewidth=0.8)
        top.annotate(_MARK_LABELS.get(name, name), (at, 102), rotation=90, fontsize=7, va="top", ha="right")
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg")
    plt.close(figure)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog: it is inlined in HTML
