"""The act phase of a game day performed by the team's runbook itself.

``When the on-call engineer follows section "Roll back" of runbook "runbooks/checkout.md"``
runs that section (and its sub-sections) against the game day's own rehearsal, under its
load: the first command marks "acted"; "done" is when the runbook has finished and every
rollout it started is complete.  Its step times, output and drift go into the journal;
a runbook that fails or has drifted fails the scenario, naming the lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gameday.errors import ConfigError, RehearsalFailed
from gameday.lifecycle import temp_dir
from gameday.project import Project
from gameday.runbook.bind import Bindings
from gameday.runbook.check import CheckResult, RunbookCheck
from gameday.runbook.model import Runbook
from gameday.runbook.parse import parse_runbook


def resolve(project: Project, path: str) -> Path:
    """A runbook path as a feature names it: relative to the project file's folder, else the working one."""
    from gameday.paths import shipped

    for base in (project.root, Path.cwd(), shipped("scenarios")):
        candidate = (base / path).resolve()
        if candidate.exists():
            return candidate
    raise ConfigError(f"runbook {path} not found (looked in {project.root}, {Path.cwd()} and the shipped scenarios)",
                      fix="give its path relative to the project file's folder")


def load(project: Project, path: str, section: str) -> Runbook:
    book = parse_runbook(resolve(project, path))
    book.find_section(section)  # an unknown section is bad input, before anything starts
    return book


def check_whole(rehearsal: Any, path: str) -> CheckResult:
    """Every section of the runbook against the rehearsal, recorded in the journal; the caller judges."""
    from gameday.runbook.environment import from_kubernetes_rehearsal
    from gameday.runbook.record import record_in_step

    project = rehearsal.project
    book = parse_runbook(resolve(project, path))
    bindings = Bindings()
    bindings.merge_project(project)
    target = from_kubernetes_rehearsal(rehearsal, project, bindings)
    result = RunbookCheck(book, bindings, target, workdir=project.root, scratch=temp_dir("runbook")).run()
    if rehearsal.journal is not None:
        record_in_step(rehearsal.journal, result, hold_targets=False)
    return result


def follow_section(rehearsal: Any, path: str, section: str) -> CheckResult:
    from gameday.runbook.environment import from_kubernetes_rehearsal
    from gameday.runbook.record import record_in_step

    project = rehearsal.project
    book = load(project, path, section)
    bindings = Bindings()
    bindings.merge_project(project)
    target = from_kubernetes_rehearsal(rehearsal, project, bindings)
    service = rehearsal.service()
    check = RunbookCheck(book, bindings, target, workdir=project.root, scratch=temp_dir("runbook"))
    rehearsal.begin_acting(service)
    result = check.run(book.subtree(book.find_section(section)))
    rehearsal.ensure_done()
    if rehearsal.journal is not None:
        record_in_step(rehearsal.journal, result)
    if result.exit_code != 0:
        problems = [f"line {f.line}: {f.message}" for f in result.findings if f.drift or f.kind == "failed"]
        problems += [f"line {s.step.line}: {s.result.status} ({s.result.reason})" for s in result.steps
                     if s.result.status in ("timeout", "skipped") and not s.findings]
        raise RehearsalFailed(f"runbook {path}, section {section!r}: " + "; ".join(problems[:5]))
    return result
