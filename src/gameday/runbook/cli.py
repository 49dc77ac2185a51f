"""``gameday runbook``: is the team's runbook still current?  Run it and see.

Exit codes: 0 current, 1 drift or a step failed, 2 bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from gameday.console import console
from gameday.runbook.check import CheckResult, StepOutcome
from gameday.runbook.model import Runbook, Section, Step


@click.group()
def runbook() -> None:
    """Run a team's markdown (or plain-text) runbook against a rehearsal and report its drift."""


@runbook.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--section", "sections", multiple=True, metavar="NAME",
              help="only this section and its sub-sections (repeatable; default: the whole runbook)")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="bind a placeholder: <revision-number>, $AWS_CLUSTER, ... (a value @previous-revision, "
                   "@current-revision, @namespace, @aws-cluster or @prev-task takes it from the rehearsal)")
@click.option("--bindings", type=click.Path(path_type=Path), default=None,
              help="YAML file: set:, namespaces:, contexts:, hosts:, ecs: (the project file's runbook: block has "
                   "the same keys)")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="project file whose services are deployed for the check (default: as `gameday run`)")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="the team's repository, where the runbook's scripts are (default: the project file's folder)")
@click.option("--before", default=None, help="release deployed first (default: the one the manifests name)")
@click.option("--after", default=None, help="release deployed over it, what the runbook rolls back "
              "(default: the same release again, as a new revision)")
@click.option("--step-timeout", type=click.FloatRange(1, 3600), default=180, show_default=True,
              help="seconds before a step is killed")
@click.option("--sleep-scale", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="scale the runbook's own sleeps (stated in the report)")
@click.option("--max-age", "max_age", type=click.IntRange(1), default=180, show_default=True,
              help="days after which 'Last Updated' is drift")
@click.option("--interactive", is_flag=True, help="ask a person to confirm each manual step, and time it")
@click.option("--list", "list_only", is_flag=True, help="only list the runbook's sections and steps; run nothing")
@click.option("--reports", type=click.Path(path_type=Path), default=None, help="report folder root")
@click.option("--run-id", default=None, help="name of this run's report folder")
def check(path: Path, sections: tuple[str, ...], sets: tuple[str, ...], bindings: Path | None, config: Path | None,
          workdir: Path | None, before: str | None, after: str | None, step_timeout: float, sleep_scale: float,
          max_age: int, interactive: bool, list_only: bool, reports: Path | None, run_id: str | None) -> None:
    """Run RUNBOOK (or --section of it) against a rehearsal; list every step and every drift by line."""
    from gameday import project as projects
    from gameday.journal import Journal, Status
    from gameday.lifecycle import temp_dir
    from gameday.paths import reports_folder
    from gameday.report import write_reports
    from gameday.runbook.bind import Bindings
    from gameday.runbook.check import RunbookCheck
    from gameday.runbook.environment import check_environment
    from gameday.runbook.parse import parse_runbook
    from gameday.runbook.record import record_check

    reports = reports_folder(reports)  # before anything runs: a finished check's reports must have a place
    book = parse_runbook(path)
    chosen = [s for name in sections for s in book.subtree(book.find_section(name))] if sections \
        else list(book.sections)
    chosen = list({s.line: s for s in chosen}.values())
    if list_only:
        _list(book, chosen)
        return
    project = projects.load(config)
    bound = Bindings()
    bound.merge_project(project)
    if bindings is not None:
        bound.merge_file(bindings)
    bound.merge_sets(sets)
    journal = Journal(run_id=run_id, environment={"command": "runbook check", "runbook": str(path),
                                                   "sleep_scale": sleep_scale})
    steps = [step for s in chosen for step in s.steps]
    console.print(f"[bold]{book.title}[/bold] · {len(chosen)} sections, {len(steps)} steps · project "
                  f"{project.path}", highlight=False)
    confirm = _confirm if interactive else None
    out_dir = reports / journal.run_id
    runner: RunbookCheck | None = None
    try:
        with check_environment(steps, project, bound, journal, before=before, after=after) as rehearsal:
            rehearsal.sleep_scale = sleep_scale
            runner = RunbookCheck(book, bound, rehearsal, workdir=(workdir or project.root),
                                  scratch=temp_dir("runbook"), step_timeout=step_timeout, confirm=confirm,
                                  max_age_days=max_age, on_step=_print_step)
            result = runner.run(chosen)
    except (KeyboardInterrupt, SystemExit):
        if runner is not None:  # what ran before the interrupt is kept, and says it was interrupted
            record_check(journal, runner.partial())
        journal.finish(Status.INTERRUPTED)
        write_reports(journal, out_dir)
        console.print(f"interrupted: the steps run so far are in {out_dir}", highlight=False)
        raise
    record_check(journal, result)
    journal.finish()
    out = write_reports(journal, out_dir)
    _print_summary(result)
    console.print(f"reports: {out}", highlight=False)
    sys.exit(result.exit_code)


_MARK = {"passed": "[green]✓[/green]", "failed": "[red]✗[/red]", "timeout": "[red]⏱[/red]",
         "skipped": "[yellow]–[/yellow]", "manual": "[dim]✋[/dim]", "not-rehearsable": "[dim]∅[/dim]"}


def _print_step(outcome: StepOutcome) -> None:
    step, result = outcome.step, outcome.result
    console.print(f"  {_MARK.get(result.status, '?')} {step.line:>4}  {result.status:<15} {result.duration_s:6.2f} s  "
                  f"{step.title[:70]}", highlight=False, markup=True)


def _print_summary(result: CheckResult) -> None:
    if result.findings:
        table = Table(title=f"findings in {result.runbook.path}", show_lines=False)
        for column in ("line", "kind", "finding"):
            table.add_column(column)
        for finding in sorted(result.findings, key=lambda f: f.line):
            table.add_row(str(finding.line), finding.kind, finding.message)
        console.print(table)
    counts = ", ".join(f"{v} {k}" for k, v in result.counts().items())
    verdict = "[green]current[/green]" if result.exit_code == 0 else "[red]not current[/red]"
    console.print(f"runbook {verdict}: {counts} · {result.duration_s:.1f} s of steps", highlight=False)


def _list(book: Runbook, sections: list[Section]) -> None:
    for section in sections:
        console.print(f"[bold]{section.line:>4} {'#' * max(1, section.level)} {section.title}[/bold]",
                      highlight=False)
        for step in section.steps:
            console.print(f"     {step.line:>4}  {step.kind:<7} {step.title[:80]}", highlight=False)


def _confirm(step: Step) -> bool:
    console.print(f"[bold]manual step[/bold] (line {step.line}): {step.text}", highlight=False)
    return click.confirm("done?", default=True)
