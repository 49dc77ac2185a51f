"""trend.html: each scenario's time to rollback across its last runs, drawn from the history store.

report.html is rendered from the journal alone; this page is the history's: per scenario, one
plot of time to rollback (total), each phase (detect, decide, act, recover) and every other time
measured, over its last N runs (default 20; a scenario with hundreds of runs is drawn over its
last N only), with failed runs marked, the current run highlighted and each regression flagged
against the median it is judged by (the same rule `gameday run` applies: gameday.history.judge),
then the values as a table.  Self-contained: the plots are inline SVG, no script, no link out.

    write_trend(History.open(path), Path("reports/r3/trend.html"), current="r3")
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from gameday.history import DEFAULT_MARGIN, DEFAULT_WINDOW, MIN_SECONDS, Regression, ScenarioRun, judge
from gameday.report.figures import verdict_mark
from gameday.report.incident import PHASE_NAMES, ROLLBACK_TIMES

if TYPE_CHECKING:
    from gameday.history import History

DEFAULT_LAST = 20  # runs per scenario on the page
DURATION = "scenario time"  # drawn only for a scenario that measured no time of its own
# the headline first (time to rollback, whatever the rehearsal's kind), then the phases in order
_FIRST = (*ROLLBACK_TIMES, *(PHASE_NAMES[p] for p in ("detect", "decide", "act", "recover")))
_COLOURS = ("#1f2937", "#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#9ca3af")


@dataclass
class _Run:
    run: ScenarioRun
    current: bool
    regressions: dict[str, Regression] = field(default_factory=dict)


@dataclass
class _Scenario:
    name: str
    runs: list[_Run]
    figures: list[str]
    more: bool  # older runs exist than those shown
    svg: str = ""

    @property
    def flagged(self) -> list[Regression]:
        """The regressions of the run the page is about: the current one, else the newest."""
        focus = next((r for r in self.runs if r.current), self.runs[-1] if self.runs else None)
        return list(focus.regressions.values()) if focus else []


def figure_order(names: Iterable[str]) -> list[str]:
    """Time to rollback first, then detect, decide, act, recover, then every other figure by name."""
    names = set(names)
    return [n for n in _FIRST if n in names] + sorted(names - set(_FIRST))


def value_of(run: ScenarioRun, figure: str) -> float | None:
    return run.duration_s if figure == DURATION else run.figures.get(figure)


def scenario_trend(store: History, scenario: str, *, last: int = DEFAULT_LAST, current: str | None = None,
                   window: int = DEFAULT_WINDOW) -> _Scenario:
    """The scenario's last ``last`` runs, each judged against the ``window`` runs before it."""
    fetched = store.scenario_runs(scenario, last=last + window)
    start = max(0, len(fetched) - last)
    runs = []
    for index in range(start, len(fetched)):
        run = fetched[index]
        found = judge(scenario, run.figures, fetched[max(0, index - window):index],
                      margin=DEFAULT_MARGIN, min_seconds=MIN_SECONDS)
        runs.append(_Run(run, run.run_id == current, {r.figure: r for r in found}))
    figures = figure_order(name for r in runs for name in r.run.figures)
    if not figures and any(r.run.duration_s is not None for r in runs):
        figures = [DURATION]
    return _Scenario(scenario, runs, figures, more=start > 0)


def trend_svg(trend: _Scenario) -> str:
    """One plot: seconds per run for every figure; failed runs crossed, the current run shaded,
    a regression ringed with the median it was judged against drawn dashed over the runs behind it."""
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: nothing global to leak, freed with the figure

    runs = trend.runs
    xs = range(len(runs))
    with matplotlib.rc_context({"svg.fonttype": "none", "text.parse_math": False, "font.size": 8}):
        figure = Figure(figsize=(9, 3.4))
        axis = figure.add_subplot()
        for x, r in zip(xs, runs, strict=True):
            if r.current:
                axis.axvspan(x - 0.45, x + 0.45, color="#fde68a", alpha=0.6, zorder=0, label="this run")
            elif r.run.status != "passed":
                axis.axvspan(x - 0.45, x + 0.45, color="#fee2e2", alpha=0.6, zorder=0)
        for n, name in enumerate(trend.figures):
            colour = _COLOURS[n % len(_COLOURS)] if name != DURATION else _COLOURS[-1]
            points = [(x, value_of(r.run, name)) for x, r in zip(xs, runs, strict=True)]
            shown = [(x, v) for x, v in points if v is not None]
            width = 2.2 if n == 0 else 1.2
            axis.plot([x for x, _ in shown], [v for _, v in shown], marker="o", markersize=3.5, linewidth=width,
                      color=colour, label=name)
            failed = [(x, v) for x, v in shown if runs[x].run.status != "passed"]
            if failed:
                axis.plot([x for x, _ in failed], [v for _, v in failed], linestyle="none", marker="X",
                          markersize=8, color="#b42318", zorder=4)
            for x, r in enumerate(runs):
                regression = r.regressions.get(name)
                if regression is None:
                    continue
                axis.hlines(regression.median, max(0, x - DEFAULT_WINDOW) - 0.3, x, colors=colour,
                            linestyles="dashed", linewidth=1)
                axis.plot([x], [regression.value], linestyle="none", marker="o", markersize=13,
                          markerfacecolor="none", markeredgecolor="#b42318", markeredgewidth=1.6, zorder=5)
                worse = (regression.value - regression.median) / regression.median if regression.median else 0
                axis.annotate(f"{worse:+.0%}", (x, regression.value), textcoords="offset points", xytext=(8, 6),
                              color="#b42318", fontsize=7)
        if any(r.run.status != "passed" for r in runs):
            axis.plot([], [], linestyle="none", marker="X", color="#b42318", label="failed run")
        if any(r.regressions for r in runs):
            axis.plot([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="#b42318",
                      label="regression (dashed: median)")
        axis.set_xticks(list(xs), [r.run.run_id for r in runs], rotation=35, ha="right", fontsize=7)
        axis.set_xlim(-0.6, len(runs) - 0.4)
        axis.set_ylim(bottom=0)
        axis.set_ylabel("seconds")
        axis.grid(axis="y", alpha=0.3)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        out = io.StringIO()
        figure.savefig(out, format="svg", bbox_inches="tight")
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog: it is inlined in HTML


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gameday trend{% if current %} · run {{ current }}{% endif %}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
td:first-child,th:first-child,td.verdict{text-align:left}
.passed{color:#17803d}.failed{color:#b42318}.error,.interrupted{color:#b54708}
tr.current td{background:#fef3c7}td.regressed{color:#b42318;font-weight:bold}
svg{max-width:100%;height:auto}
</style></head><body>
<h1>Time to rollback across runs</h1>
<p>{% if current %}Run <strong>{{ current }}</strong>{% if report %} (<a href="report.html">report.html</a>){% endif %} · {% endif %}
history {{ where }} · each scenario's last {{ last }} runs · a <span class="failed">regression</span> is a time worse
than the median of the scenario's previous {{ window }} passed runs by more than {{ "%.0f" | format(margin * 100) }} %
and {{ min_seconds }} s</p>
{% if not scenarios %}<p>No runs recorded yet.</p>{% endif %}
{% if scenarios %}<table><tr><th>Scenario</th><th>Runs shown</th><th>Latest verdict</th><th>Regressions{{ ' (this run)' if current else ' (latest run)' }}</th></tr>
{% for s in scenarios %}{% set newest = s.runs[-1].run %}<tr><td><a href="#s{{ loop.index }}">{{ s.name }}</a></td>
<td>{{ s.runs | length }}{% if s.more %} (older ones kept){% endif %}</td>
<td class="verdict {{ newest.status }}">{{ mark(newest.status) }} {{ newest.status }}</td>
<td class="{{ 'failed' if s.flagged else '' }}">{{ s.flagged | length }}</td></tr>
{% endfor %}</table>{% endif %}
{% for s in scenarios %}
<h2 id="s{{ loop.index }}">{{ s.name }}</h2>
{% if s.flagged %}<ul>{% for r in s.flagged %}<li class="failed">regression: {{ r.line() }}</li>{% endfor %}</ul>{% endif %}
{% if s.svg %}{{ s.svg | safe }}{% else %}<p>No time measured in these runs.</p>{% endif %}
<table><tr><th>Run</th><th>Started</th><th>Verdict</th><th>Scenario time</th>
{% for f in s.figures if f != duration %}<th>{{ f }}</th>{% endfor %}</tr>
{% for r in s.runs | reverse %}<tr class="{{ 'current' if r.current else '' }}"><td>{{ r.run.run_id }}</td>
<td>{{ r.run.start }}</td><td class="verdict {{ r.run.status }}">{{ mark(r.run.status) }} {{ r.run.status }}</td>
<td>{% if r.run.duration_s is not none %}{{ "%.1f" | format(r.run.duration_s) }} s{% endif %}</td>
{% for f in s.figures if f != duration %}{% set reg = r.regressions.get(f) %}{% set v = r.run.figures.get(f) %}
<td{% if reg %} class="regressed" title="median {{ '%.2f' | format(reg.median) }} s of the {{ reg.runs }} passed runs before"{% endif %}>
{%- if v is not none %}{{ "%.2f" | format(v) }}{% if reg %} ▲{% endif %}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endfor %}
</body></html>
"""


def render_trend(store: History, *, scenarios: Sequence[str] | None = None, current: str | None = None,
                 last: int = DEFAULT_LAST, report: bool = False) -> str:
    """The page for ``scenarios`` (default: every scenario in the store), ``current`` the run it is about."""
    names = list(scenarios) if scenarios is not None else store.scenarios()
    trends = [scenario_trend(store, name, last=last, current=current) for name in dict.fromkeys(names)]
    trends = [t for t in trends if t.runs]
    for trend in trends:
        trend.svg = trend_svg(trend) if trend.figures else ""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_TEMPLATE).render(
        scenarios=trends, current=current, where=str(store), last=last, window=DEFAULT_WINDOW,
        margin=DEFAULT_MARGIN, min_seconds=MIN_SECONDS, mark=verdict_mark, duration=DURATION, report=report)


def write_trend(store: History, path: Path, **options: Any) -> Path:
    """Render the page, then write it whole (a page that cannot be drawn leaves no half file)."""
    page = render_trend(store, report=(path.parent / "report.html").exists(), **options)
    path.write_text(page)
    return path
