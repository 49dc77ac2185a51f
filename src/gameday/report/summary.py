"""summary.md: the human-readable account of a run, rendered from the journal."""

from __future__ import annotations

import jinja2

from gameday.journal import JournalRecord
from gameday.report.figures import backtest as backtest_rows
from gameday.report.figures import (
    drift,
    endpoint_errors,
    fmt_measurement,
    headline,
    md_cell,
    runbook_steps,
    scenario_measurements,
    verdict_mark,
)

_TEMPLATE = """\
# gameday run {{ j.run_id }}

**Verdict: {{ j.status | upper }}** · started {{ j.start }} · {{ "%.1f" | format(total) }} s ·
{{ counts.passed }} passed, {{ counts.failed }} failed, {{ counts.error }} errors
{%- if counts.interrupted %}, {{ counts.interrupted }} interrupted{% endif %}
{%- if j.get("interrupted_by") %} · stopped by {{ j.interrupted_by }}{% endif %}
{%- for e in (j.get("run") or {}).get("events", []) if e.kind == "run-stopped" %} · run {{ e.message }}{% endfor %}

| Scenario | Verdict | Duration | Key figures |
|---|---|---|---|
{% for s in j.scenarios -%}
| {{ s.name | cell }} | {{ mark(s.status) }} {{ s.status }} | {{ "%.1f" | format(s.duration_s or 0) }} s | {{ headline(s) | cell }} |
{% endfor %}
{%- if simulated %}

Figures marked *(simulated)* are API state only (moto), not observed on real processes or data;
they are never added to real figures.
{%- endif %}
{% for s in j.scenarios %}

## {{ mark(s.status) }} {{ s.name }}
_{{ s.feature }}_{% if s.tags %} · tags: {{ s.tags | join(", ") }}{% endif %}
{% if s.error %}

> {{ s.status | upper }}: {{ s.error }}
{% endif %}

| | Step | Time |
|---|---|---|
{% for st in s.steps -%}
| {{ mark(st.status) }} | {{ st.keyword }} {{ st.name | cell }}{% if st.error %}<br>→ {{ st.error | cell }}{% endif %} | {{ "%.2f" | format(st.duration_s or 0) }} s |
{% endfor %}
{%- set ms = measurements(s) %}
{%- if ms %}

| Measurement | Value | Target | Verdict | Observed |
|---|---|---|---|---|
{% for m in ms -%}
| {{ m.name | cell }} | {{ fmt(m) }} | {% if m.target is not none %}{{ "≤" if m.bound == "max" else "≥" }} {{ m.target }} {{ m.unit }}{% endif %} | {% if m.passed is not none %}{{ "met" if m.passed else "MISSED" }}{% endif %} | {{ m.fidelity }} |
{% endfor %}
{%- endif %}
{%- set bt = backtest(s) %}
{%- if bt %}

Backtest of the rules on this scenario's traffic (replayed at a 0.5 s evaluation interval; low traffic keeps one request in N):

| Rule | Would fire | False alarms when healthy | At low traffic: fires | False alarms | Requests per window |
|---|---|---|---|---|---|
{% for r in bt -%}
| {{ r.rule | cell }} | {{ r.fires }} | {{ r.false_alarms }} in {{ r.healthy_s }} s | {{ r.low_fires }} (1 in {{ r.low_traffic_one_in }}) | {{ r.low_traffic_false_alarms }} | {{ r.low_traffic_per_window }} |
{% endfor %}
{%- endif %}
{%- set ep = endpoint_errors(s) %}
{%- if ep %}

Failed requests per endpoint (before the release, during it, while the on-call acted, after):

| Endpoint | Before | Incident | Acting | After |
|---|---|---|---|---|
{% for r in ep -%}
| {{ r.endpoint | cell }} | {{ r.before }} | {{ r.incident }} | {{ r.acting }} | {{ r.after }} |
{% endfor %}
{%- endif %}
{%- set rb = runbook_steps(s) %}
{%- if rb %}

Runbook steps:

| Line | Status | Time | Step | Output (end) |
|---|---|---|---|---|
{% for r in rb -%}
| {{ r.line }} | {{ r.status }} | {{ "%.2f" | format(r.duration_s) }} s | {{ r.title | cell }}{% if r.reason %} ({{ r.reason | cell }}){% endif %} | {{ r.output[-160:] | cell }} |
{% endfor %}
{%- endif %}
{%- set found = drift(s) %}
{%- if found %}

Runbook findings:

{% for f in found -%}
- line {{ f.line }} · {{ "drift" if f.drift else "note" }} · {{ f.kind }}: {{ f.message }}
{% endfor %}
{%- endif %}
{%- endfor %}
"""


def render_summary(journal: JournalRecord) -> str:
    env = jinja2.Environment(autoescape=False, trim_blocks=False, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    scenarios = journal["scenarios"]
    counts = {k: sum(s["status"] == k for s in scenarios) for k in ("passed", "failed", "error", "interrupted")}
    simulated = any(m["fidelity"] == "simulated" for s in scenarios for m in scenario_measurements(s))
    env.filters["cell"] = md_cell
    template = env.from_string(_TEMPLATE)
    return template.render(
        j=journal, counts=counts, total=sum(s["duration_s"] or 0 for s in scenarios), simulated=simulated,
        mark=verdict_mark, headline=headline, measurements=scenario_measurements, fmt=fmt_measurement,
        runbook_steps=runbook_steps, drift=drift, backtest=backtest_rows, endpoint_errors=endpoint_errors,
    )
