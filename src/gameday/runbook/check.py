"""Run a runbook (or some of its sections) against a rehearsal, step by step, and list its drift.

    check = RunbookCheck(runbook, bindings, rehearsal, workdir=repo, scratch=tmp)
    result = check.run(runbook.subtree(runbook.find_section("Execute Rollback")))
    result.exit_code   # 0 current, 1 drift or a step failed

Shell steps run in bash against the rehearsal (:mod:`.execute`); SQL steps through psql
on the rehearsal database; prose is "manual" (``confirm`` asks a person and times them);
other languages are listed as not rehearsable.  A step whose placeholder nothing binds
is not run.  Each section is timed and held to its own stated target.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError
from gameday.runbook.bind import Bindings, assigned_names, fill, placeholders
from gameday.runbook.drift import Finding, missing_scripts, result_findings, stale
from gameday.runbook.execute import StepResult, Workspace
from gameday.runbook.model import Runbook, Section, Step

STEP_TIMEOUT_S = 180.0
MAX_AGE_DAYS = 180  # "Last Updated" older than this is drift
SQL_TERMINATOR = "__GAMEDAY_SQL__"


@dataclass
class Rehearsal:
    """What a runbook's commands may reach, all of it rehearsal: see :mod:`.shim`."""

    kubernetes: dict[str, Any] | None = None  # kubeconfig, namespaces, default_namespace, contexts, owns_cluster
    aws: dict[str, Any] | None = None  # endpoint, env
    database: dict[str, Any] | None = None  # dsn
    hosts: dict[str, str] = field(default_factory=dict)
    rollback_state: dict[str, str] | None = None
    facts: dict[str, str] = field(default_factory=dict)  # "@previous-revision" -> "3", ...
    tools: dict[str, str | None] = field(default_factory=dict)
    sleep_scale: float = 1.0
    env: dict[str, str] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        from gameday.runbook.execute import real_tools

        return {"kubernetes": self.kubernetes, "aws": self.aws, "database": self.database, "hosts": self.hosts,
                "sleep_scale": self.sleep_scale, "tools": {**real_tools(), **self.tools}}


@dataclass
class StepOutcome:
    step: Step
    result: StepResult
    findings: list[Finding]

    @property
    def status(self) -> str:
        return self.result.status


@dataclass
class SectionOutcome:
    section: Section
    steps: list[StepOutcome]
    duration_s: float
    target_s: float | None
    target_text: str
    findings: list[Finding]
    target_line: int = 0
    subtree_s: float = 0.0  # this section and its sub-sections: what its stated target is held to

    @property
    def status(self) -> str:
        if any(s.status in ("failed", "timeout", "skipped") for s in self.steps) or any(f.drift for f in self.findings):
            return "failed"
        return "passed"


@dataclass
class CheckResult:
    runbook: Runbook
    sections: list[SectionOutcome]
    findings: list[Finding]  # every finding, runbook-wide ones (stale) included

    @property
    def drift(self) -> list[Finding]:
        return [f for f in self.findings if f.drift]

    @property
    def steps(self) -> list[StepOutcome]:
        return [s for section in self.sections for s in section.steps]

    def counts(self) -> dict[str, int]:
        steps = self.steps
        return {
            "run": sum(s.status in ("passed", "failed", "timeout") for s in steps),
            "passed": sum(s.status == "passed" for s in steps),
            "failed": sum(s.status in ("failed", "timeout") for s in steps),
            "manual": sum(s.status == "manual" for s in steps),
            "not rehearsable": sum(s.status == "not-rehearsable" for s in steps),
            "not run": sum(s.status == "skipped" for s in steps),
            "drift": len(self.drift),
        }

    @property
    def exit_code(self) -> int:
        return 1 if self.drift or any(s.status in ("failed", "timeout", "skipped") for s in self.steps) else 0

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.sections)


class RunbookCheck:
    def __init__(self, runbook: Runbook, bindings: Bindings, rehearsal: Rehearsal, *, workdir: Path, scratch: Path,
                 step_timeout: float = STEP_TIMEOUT_S, confirm: Callable[[Step], bool] | None = None,
                 max_age_days: int | None = MAX_AGE_DAYS, today: date | None = None,
                 on_step: Callable[[StepOutcome], None] | None = None) -> None:
        self.runbook = runbook
        self.bindings = bindings
        self.rehearsal = rehearsal
        self.workdir = workdir
        self.scratch = scratch
        self.step_timeout = step_timeout
        self.confirm = confirm
        self.max_age_days = max_age_days
        self.today = today or date.today()
        self.on_step = on_step
        self._outcomes: list[SectionOutcome] = []
        self._findings: list[Finding] = []
        self._open: SectionOutcome | None = None
        shell_texts = [s.text for s in runbook.steps() if s.kind == "shell"]
        self.assigned = assigned_names(shell_texts)
        sources_state = any(c.program in ("source", ".") and ".rollback_state" in c.text
                            for s in runbook.steps() for c in s.commands)
        if sources_state and rehearsal.rollback_state:
            self.assigned |= set(rehearsal.rollback_state)

    def run(self, sections: Sequence[Section] | None = None) -> CheckResult:
        chosen = list(sections) if sections is not None else list(self.runbook.sections)
        findings: list[Finding] = []
        old = stale(self.runbook.last_updated, self.runbook.last_updated_line, self.max_age_days, self.today)
        if old is not None:
            findings.append(old)
        self._findings = findings
        outcomes = self._outcomes = []
        with Workspace(self.scratch, workdir=self.workdir, context=self.rehearsal.context(),
                       rollback_state=self.rehearsal.rollback_state, env=self.rehearsal.env) as workspace:
            for section in chosen:
                self._open = SectionOutcome(section, [], 0.0, None, "", [])
                outcomes.append(self._section(section, workspace))
                self._open = None
        return self.partial()

    def partial(self) -> CheckResult:
        """What was found so far (all of it once :meth:`run` returned; an interrupted check's part)."""
        outcomes = list(self._outcomes)
        if self._open is not None and self._open.steps:
            outcomes.append(self._open)
        _hold_targets(self.runbook, outcomes)
        findings = list(self._findings)
        for outcome in outcomes:
            findings.extend(outcome.findings)
        return CheckResult(self.runbook, outcomes, findings)

    def _section(self, section: Section, workspace: Workspace) -> SectionOutcome:
        steps = []
        findings = missing_scripts([c for s in section.steps for c in s.commands], workspace.cwd, section.title)
        if self._open is not None:
            steps = self._open.steps  # an interrupted check still reports the steps this section ran
        for step in section.steps:
            outcome = self._step(step, workspace)
            steps.append(outcome)
            findings.extend(outcome.findings)
            if self.on_step is not None:
                self.on_step(outcome)
        scripts = {f.line for f in findings if f.kind == "missing-script"}
        findings = [f for f in findings if not (f.kind == "missing-cli" and f.line in scripts)]
        for outcome in steps:
            outcome.findings = [f for f in outcome.findings if not (f.kind == "missing-cli" and f.line in scripts)]
        target = next((t for t in section.targets if t.kind == "section"), None)
        return SectionOutcome(section, steps, sum(s.result.duration_s for s in steps),
                              target.seconds if target else None, target.text if target else "", findings,
                              target.line if target else 0)

    def _step(self, step: Step, workspace: Workspace) -> StepOutcome:
        outcome = self._run_step(step, workspace)
        outcome.result.started = outcome.result.started or time.time()
        return outcome

    def _run_step(self, step: Step, workspace: Workspace) -> StepOutcome:
        if step.kind == "manual":
            return self._manual(step)
        if step.kind not in ("shell", "sql"):
            result = StepResult("not-rehearsable", reason=f"a {step.language or 'prose'} block: gameday runs shell "
                                "and SQL steps")
            return StepOutcome(step, result, [])
        text, line_map = step.text, step.line_map
        if step.kind == "sql":
            text = f"psql -v ON_ERROR_STOP=1 -X <<'{SQL_TERMINATOR}'\n{text}\n{SQL_TERMINATOR}"
            line_map = (line_map[0], *line_map, line_map[-1])
        values, env, unbound = self._bind(text, line_map, step.section)
        if unbound:
            names = ", ".join(sorted({f.message.split()[2] for f in unbound}))
            return StepOutcome(step, StepResult("skipped", reason=f"unbound placeholder {names}: not run"), unbound)
        result = workspace.run(line_map, fill(text, values), timeout=self.step_timeout, env=env)
        findings = [f if f.line else dataclasses.replace(f, line=step.line)
                    for f in result_findings(result, step.section)]
        return StepOutcome(step, result, findings)

    def _bind(self, text: str, line_map: tuple[int, ...], section: str) -> tuple[dict[str, str], dict[str, str],
                                                                                list[Finding]]:
        values: dict[str, str] = {}
        env: dict[str, str] = {}
        unbound: list[Finding] = []
        for placeholder in placeholders(text, line_map, self.assigned):
            value = self.bindings.values.get(placeholder.name)
            if value is not None and value.startswith("@"):
                if value not in self.rehearsal.facts:
                    raise ConfigError(f"binding {placeholder.name}={value} names an unknown fact",
                                      fix=f"use one of {', '.join(sorted(self.rehearsal.facts)) or '(none here)'}")
                value = self.rehearsal.facts[value]
            if value is None:
                unbound.append(Finding("unbound-placeholder", placeholder.line,
                                       f"placeholder {placeholder.form} is not bound (--set {placeholder.name}=... "
                                       "or a bindings file)", section))
            elif placeholder.form.startswith("<"):
                values[placeholder.name] = value
            else:
                env[placeholder.name] = value
        return values, env, unbound

    def _manual(self, step: Step) -> StepOutcome:
        if self.confirm is None:
            return StepOutcome(step, StepResult("manual", reason="for a person: not run"), [])
        began = time.monotonic()
        done = self.confirm(step)
        result = StepResult("passed" if done else "failed", duration_s=time.monotonic() - began, started=time.time(),
                            reason="confirmed by a person" if done else "a person said it could not be done")
        findings = [] if done else [Finding("failed", step.line, f"manual step not done: {step.title}", step.section)]
        return StepOutcome(step, result, findings)


def _hold_targets(runbook: Runbook, outcomes: list[SectionOutcome]) -> None:
    """Each section with a stated target against the time of its whole sub-tree."""
    by_line = {o.section.line: o for o in outcomes}
    for outcome in outcomes:
        if outcome.target_s is None:
            continue
        subtree = [by_line[s.line] for s in runbook.subtree(outcome.section) if s.line in by_line]
        took = outcome.subtree_s = sum(o.duration_s for o in subtree)
        ran = any(s.status in ("passed", "failed", "timeout") for o in subtree for s in o.steps)
        if ran and took > outcome.target_s:
            outcome.findings.append(Finding("target-missed", outcome.target_line or outcome.section.line,
                                            f"section took {took:.1f} s, its target is {outcome.target_text}",
                                            outcome.section.title))


def expect_drift(result: CheckResult, table: list[list[str]]) -> None:
    """Raise RehearsalFailed unless the drift found is exactly ``table`` (header row: line | kind)."""
    from gameday.errors import RehearsalFailed

    header = [cell.strip().lower() for cell in table[0]]
    if header[:2] != ["line", "kind"]:
        raise ConfigError("the drift table's columns must be: line | kind", fix="start the table with | line | kind |")
    wanted = {(int(row[0]), row[1].strip()) for row in table[1:]}
    found = {(f.line, f.kind) for f in result.drift}
    if wanted != found:
        missing = ", ".join(f"line {line} {kind}" for line, kind in sorted(wanted - found)) or "none"
        extra = "; ".join(f"line {f.line} {f.kind}: {f.message}" for f in result.drift
                          if (f.line, f.kind) in found - wanted) or "none"
        raise RehearsalFailed(f"drift not as expected: missing {missing}; unexpected {extra}")
