"""A runbook check in the run journal, so every report (summary, HTML, JUnit) renders it.

``gameday runbook check``: each section with steps is a scenario, each runbook step a
step (its line, status, time, output excerpt and the calls it made, as a
``runbook-step`` event), each finding a ``drift`` event, each section's time a
measurement held to its stated target.  Inside a game day the same events go into the
current step (the on-call following a section).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gameday.journal import Journal, Scenario, Status, Step
from gameday.runbook.check import CheckResult, SectionOutcome, StepOutcome

_STATUS = {"passed": Status.PASSED, "failed": Status.FAILED, "timeout": Status.FAILED, "skipped": Status.FAILED,
           "manual": Status.SKIPPED, "not-rehearsable": Status.SKIPPED}
KEYWORD = {"shell": "Run", "sql": "SQL", "manual": "Manual", "other": "Block"}


def step_data(outcome: StepOutcome) -> dict[str, Any]:
    step, result = outcome.step, outcome.result
    return {
        "line": step.line, "end_line": step.end_line, "section": step.section, "kind": step.kind,
        "title": step.title, "status": result.status, "duration_s": round(result.duration_s, 3),
        "exit_code": result.exit_code, "reason": result.reason, "output": result.excerpt,
        "calls": [{"line": c.line, "command": c.command, "outcome": c.outcome, "exit": c.exit,
                   "duration_s": c.duration_s, "notes": c.notes, "reason": c.reason} for c in result.calls],
        "findings": [f.to_dict() for f in outcome.findings],
    }


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def record_check(journal: Journal, result: CheckResult) -> None:
    """Record a whole check: one scenario per section that has steps."""
    runbook = result.runbook
    journal.environment["runbook"] = {"path": str(runbook.path), "title": runbook.title,
                                      "last_updated": runbook.last_updated.isoformat() if runbook.last_updated
                                      else None, "counts": result.counts()}
    for finding in result.findings:
        if not finding.section:
            journal.loose.events.append(_finding_event(journal, finding))
    for section in result.sections:
        if not section.steps and section.target_s is None:
            continue
        scenario = journal.begin_scenario(" › ".join(section.section.path) or section.section.title,
                                          feature=f"{runbook.path}:{section.section.line}", tags=["runbook"])
        for outcome in section.steps:
            scenario.steps.append(_step(outcome))
        _close(journal, scenario, section)


def _step(outcome: StepOutcome) -> Step:
    result = outcome.result
    step = Step(name=f"line {outcome.step.line}: {outcome.step.title}", keyword=KEYWORD.get(outcome.step.kind, "Run"))
    if result.started:
        step.start = _stamp(result.started)
        step.end = _stamp(result.started + result.duration_s)
    else:
        step.end = step.start
    step.status = _STATUS.get(result.status, Status.FAILED)
    problems = [f.message for f in outcome.findings] or ([result.reason] if step.status == Status.FAILED else [])
    if problems and step.status == Status.FAILED:
        step.error = "; ".join(problems)[:500]
    step.events.append(_event("runbook-step", f"line {outcome.step.line}: {result.status}", step_data(outcome)))
    return step


def _close(journal: Journal, scenario: Scenario, section: SectionOutcome) -> None:
    from gameday.journal import Event, Measurement

    took = section.subtree_s if section.target_s is not None else section.duration_s
    scenario.measurements.append(Measurement(
        name=f"section '{section.section.title}' time", value=round(took, 3), unit="s",
        target=section.target_s, detail=section.target_text + (" (with its sub-sections)" if not section.steps
                                                                else "")))
    for finding in section.findings:
        scenario.events.append(Event(kind="drift" if finding.drift else "finding",
                                     message=f"line {finding.line}: {finding.message}", data=finding.to_dict()))
    starts = [s.start for s in scenario.steps]
    ends = [s.end for s in scenario.steps if s.end]
    if starts:
        scenario.start = min(starts)
    scenario.end = max(ends) if ends else scenario.start
    scenario.status = Status.PASSED if section.status == "passed" else Status.FAILED
    drift = [f for f in section.findings if f.drift]
    failed = [s for s in section.steps if s.status in ("failed", "timeout", "skipped")]
    if drift or failed:
        scenario.error = "; ".join([*(f"line {f.line}: {f.message}" for f in drift),
                                    *(f"line {s.step.line}: step {s.status}" for s in failed
                                      if not s.findings)])[:1000]


def record_in_step(journal: Journal, result: CheckResult, *, hold_targets: bool = True) -> None:
    """Inside a game day: everything as events (and section times) of the current step.

    ``hold_targets=False`` (a check whose findings the feature judges): a missed section target
    is a drift finding, not a failed measurement."""
    for section in result.sections:
        for outcome in section.steps:
            journal.current.events.append(_event("runbook-step", f"line {outcome.step.line}: "
                                                 f"{outcome.result.status}", step_data(outcome)))
        if section.steps or section.target_s is not None:
            took = section.subtree_s if section.target_s is not None else section.duration_s
            journal.measure(f"runbook section '{section.section.title}' time", round(took, 3), "s",
                            target=section.target_s if hold_targets else None,
                            detail=section.target_text if hold_targets or not section.target_text
                            else f"stated: {section.target_text}")
    for finding in result.findings:
        journal.current.events.append(_finding_event(journal, finding))


def _event(kind: str, message: str, data: dict[str, Any]) -> Any:
    from gameday.journal import Event

    return Event(kind=kind, message=message, data=data)


def _finding_event(journal: Journal, finding: Any) -> Any:
    return _event("drift" if finding.drift else "finding", f"line {finding.line}: {finding.message}",
                  finding.to_dict())
