"""The `gameday` command.

Exit codes everywhere: 0 all passed, 1 a rehearsal failed (the system under test did
not hold), 2 bad input or the harness could not do its job.
"""

# ruff: noqa: E402 - the early signal handlers below go in before the heavy imports
from __future__ import annotations

import os
import signal
import sys


def _stopped_before_anything_started(signum: int, frame: object) -> None:
    os._exit(128 + signum)  # nothing started yet: nothing to clean up


if __name__ == "__main__" or os.path.basename(sys.argv[0] if sys.argv else "") == "gameday":
    # Only as the `gameday` command (never when imported by tests or a library user): Ctrl-C or
    # SIGTERM while it is still importing exits 130/143 at once, no traceback; the real
    # handlers (gameday.lifecycle) replace these before any work begins.
    for _signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signum, _stopped_before_anything_started)

import importlib
import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

import click
from rich.text import Text

from gameday import settings
from gameday.console import console, err_console, print_error
from gameday.errors import ConfigError, GameDayError
from gameday.lifecycle import (
    install_signal_handlers,
    interrupt_signal,
    received_signal,
    signal_name,
    sweep_stale_dirs,
)

# Sub-command groups live beside the code they drive; they load when first used, so
# `gameday run` never pays for importing the cluster or AWS stacks.
_GROUPS: dict[str, tuple[str, str]] = {
    "db": ("gameday.database.cli", "db"),
    "cluster": ("gameday.cluster.cli", "cluster"),
    "aws": ("gameday.aws.cli", "aws"),
    "runbook": ("gameday.runbook.cli", "runbook"),
    "docker": ("gameday.containers.cli", "docker"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *(n for n in _GROUPS if _available(n))])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _GROUPS and _available(name):
            module, attr = _GROUPS[name]
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        return super().get_command(ctx, name)


def _available(name: str) -> bool:
    return importlib.util.find_spec(_GROUPS[name][0]) is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gameday")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Rehearse deployment rollbacks for real and measure time-to-rollback."""
    if ctx.invoked_subcommand != "settings":  # `gameday settings` shows a bad value instead of refusing it
        settings.validate_all()  # every GAMEDAY_* value, before anything starts
    install_signal_handlers()
    sweep_stale_dirs("*")  # what a killed run (SIGKILL, a crash) left in the temp dir


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--reports", type=click.Path(path_type=Path), default=None,
              help="where reports/<run-id>/ go (default: $GAMEDAY_REPORTS or ./reports)")
@click.option("--run-id", default=None, help="name of this run's report folder")
@click.option("--steps", "step_modules", multiple=True, metavar="MODULE",
              help="extra step-definition module (importable name or .py file), repeatable; its steps and "
                   "fixtures override the library's")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="project file (default: $GAMEDAY_CONFIG, else the nearest gameday.yaml upward, else the demo's)")
@click.option("--images", "images", multiple=True, type=click.Path(path_type=Path),
              help="extra image catalog file for the embedded cluster, repeatable (later files win)")
@click.option("-k", "select", default=None, help="only scenarios whose name matches this pytest -k expression")
@click.option("-v", "--verbose", is_flag=True, help="show pytest's own output and tracebacks")
@click.option("--fail-on-regression", is_flag=True,
              help="exit 3 when every scenario passed but a time is worse than the median of its last runs")
@click.option("--live", is_flag=True,
              help="a live game day: gameday breaks the service, then the people on call roll back however they "
                   "choose; gameday watches the cluster and measures decide and act (GAMEDAY_LIVE=1)")
def run(paths: tuple[Path, ...], reports: Path | None, run_id: str | None, step_modules: tuple[str, ...],
        config: Path | None, images: tuple[Path, ...], select: str | None, verbose: bool,
        fail_on_regression: bool, live: bool) -> None:
    """Run game-day features (default: the project's features/, else the shipped ones) and write reports."""
    from gameday.paths import reports_folder, safe_name
    from gameday.runner import run_features

    if run_id is not None:
        safe_name(run_id, "--run-id")  # a folder name under --reports, never a path out of it
    reports = reports_folder(reports)
    if run_id is not None and (reports / run_id).exists():
        raise ConfigError(f"--run-id {run_id}: {reports / run_id} already exists (a run's reports are never "
                          "overwritten)", fix="pick another --run-id, or leave it out for a fresh one")
    from gameday.history import History
    from gameday.runner import history_path

    History.check(history_path(reports))  # before the run: its record must have a place
    for image_file in images:
        if not image_file.is_file():
            raise ConfigError(f"--images: image catalog {image_file} not found", fix="check the path")
    if live:
        os.environ["GAMEDAY_LIVE"] = "1"
    if images:
        os.environ["GAMEDAY_IMAGES"] = os.pathsep.join(str(p.resolve()) for p in images)
    result = run_features(paths, reports=reports, run_id=run_id,
                          step_modules=step_modules, config=config, select=select, console=console,
                          verbose=verbose, fail_on_regression=fail_on_regression)
    signum = received_signal()
    sys.exit(128 + signum if signum is not None and result.exit_code != 0 else result.exit_code)


@cli.command()
@click.option("--reports", type=click.Path(path_type=Path), default=None,
              help="the reports folder whose history.sqlite to read (default: $GAMEDAY_REPORTS or ./reports; "
                   "GAMEDAY_HISTORY names another file or a postgresql:// store)")
@click.option("--last", type=click.IntRange(1, 100), default=None,
              help="runs per scenario  [default: 5 in the table, 20 in --html]")
@click.option("-k", "select", default=None, help="only scenarios whose name contains this text")
@click.option("--html", "html", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="also write the trend page (a plot and the values per scenario, as each run's trend.html) to FILE")
def history(reports: Path | None, last: int | None, select: str | None, html: Path | None) -> None:
    """Each scenario's last runs: verdict, duration and every time measured, with the trend."""
    from rich.table import Table

    from gameday.history import History
    from gameday.paths import file_in_the_way, reports_folder
    from gameday.runner import history_path

    if html is not None:  # before anything is read: the page must have a place
        blocking = file_in_the_way(html)
        if html.is_dir() or blocking is not None or not html.absolute().parent.is_dir():
            why = (f"{blocking} is a file, not a folder" if blocking is not None
                   else "is a folder" if html.is_dir() else f"folder {html.absolute().parent} does not exist")
            raise ConfigError(f"--html {html}: {why}", fix="name a file in an existing folder")
    store = History.open(history_path(reports_folder(reports)), create=False)
    scenarios = [s for s in store.scenarios() if not select or select.lower() in s.lower()]
    for scenario in scenarios:
        runs = store.scenario_runs(scenario, last=last or 5)
        figures = sorted({name for r in runs for name in r.figures})
        table = Table(title=scenario, title_justify="left")
        for column in ("run", "verdict", "time", *figures):
            table.add_column(column, justify="left" if column in ("run", "verdict") else "right")
        for r in runs:
            table.add_row(r.run_id, r.status, "" if r.duration_s is None else f"{r.duration_s:.1f}s",
                          *(f"{r.figures[f]:.2f}" if f in r.figures else "" for f in figures))
        if len(runs) >= 2:
            trend = [_trend(runs[0].figures.get(f), runs[-1].figures.get(f)) for f in figures]
            table.add_row("trend", "", "", *trend)
        console.print(table)
    if html is not None:
        from gameday.report.trend import DEFAULT_LAST, write_trend

        console.print(f"trend: {write_trend(store, html, scenarios=scenarios, last=last or DEFAULT_LAST)}",
                      highlight=False)


def _trend(first: float | None, last: float | None) -> str:
    if first is None or last is None or first == 0:
        return ""
    change = (last - first) / first
    return "=" if abs(change) < 0.05 else f"{'↑' if change > 0 else '↓'} {change:+.0%}"


@cli.command()
@click.option("--manifests", type=click.Path(path_type=Path), default=None,
              help="folder (or file) of your Kubernetes manifests (default: k8s/, kubernetes/, manifests/, deploy/)")
@click.option("--kustomize", type=click.Path(path_type=Path), default=None, help="a kustomization folder instead")
@click.option("--command", "command", required=True,
              help='how to run your service locally, e.g. "{python} {dir}/app.py" or "node {dir}/server.js" '
                   "(it must listen on $HOST:$PORT)")
@click.option("--version-env", default="APP_VERSION", show_default=True,
              help="the environment variable your service reads its release from")
@click.option("--release-header", default=None, help="the response header naming the release that served it")
@click.option("--release-json", default=None, help="or: the JSON body field naming it (dotted path)")
@click.option("--users", type=click.IntRange(1, 1000), default=4, show_default=True, help="load users")
@click.option("--request", "requests", multiple=True, metavar="PATH",
              help="a GET path your users call, for the load (repeatable; edit gameday.yaml for more)")
def init(manifests: Path | None, kustomize: Path | None, command: str, version_env: str,
         release_header: str | None, release_json: str | None, users: int, requests: tuple[str, ...]) -> None:
    """Scaffold gameday.yaml, features/rollback.feature and the pytest glue from your manifests."""
    from gameday.scaffold import init as scaffold

    for path in scaffold(Path.cwd(), manifests=manifests, kustomize=kustomize, command=command,
                         version_env=version_env, release_header=release_header, release_json=release_json,
                         users=users, requests=requests):
        console.print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    console.print("next: `gameday run` (embedded cluster) — see README.md, 'Rehearse your own service'")


@cli.command()
@click.option("--steps", "step_modules", multiple=True, metavar="MODULE", help="also list this module's steps")
def steps(step_modules: tuple[str, ...]) -> None:
    """List the step library: every sentence a feature can use."""
    from gameday.features import step_library

    for definition in sorted(step_library(step_modules), key=lambda d: (d.module, d.kind, d.pattern)):
        fields = ", ".join(definition.parameters)
        console.print(f"[dim]{definition.module.rsplit('.', 1)[-1]:>16}[/dim]  [bold]{definition.kind:<5}[/bold] "
                      f"{definition.text}", highlight=False, soft_wrap=True)
        if definition.summary:
            console.print(f"{'':>24}[dim]{definition.summary}" + (f" (parameters: {fields})" if fields else "")
                          + "[/dim]", highlight=False, soft_wrap=True)
        if definition.example:
            console.print(f"{'':>24}[dim]e.g.[/dim] {definition.example}", highlight=False, soft_wrap=True)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report(run_dir: Path) -> None:
    """Render junit.xml, summary.md, incident.md and report.html again from a run's journal.json."""
    from gameday.journal import load, unclosed
    from gameday.report import render_all
    from gameday.runner import print_summary

    journal_path = run_dir / "journal.json"
    if not journal_path.exists():
        raise ConfigError(f"{run_dir} has no journal.json", fix="pass a reports/<run-id>/ folder")
    data = load(journal_path)  # one line naming the file when it is empty, corrupt, truncated or not a journal
    gaps = unclosed(data)
    if gaps:  # a killed run leaves the last journal it wrote: render it, and say what it lacks
        console.print(f"[yellow]note:[/yellow] {journal_path} is the record of a run that did not close "
                      f"({'; '.join(gaps[:3])}{'; ...' if len(gaps) > 3 else ''}); the reports show what it "
                      "recorded", highlight=False, soft_wrap=True)
    # Render everything first, then replace the files: a journal that cannot be rendered changes nothing.
    with tempfile.TemporaryDirectory(prefix="gameday-report-") as scratch:
        try:
            render_all(data, Path(scratch))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{journal_path} is not a complete gameday journal ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'unexpected content'})",
                              fix="pass the reports/<run-id>/ folder of a finished `gameday run`") from None
        for rendered in sorted(Path(scratch).iterdir()):
            shutil.copyfile(rendered, run_dir / rendered.name)
    print_summary(data, console)


@cli.command(name="settings")
def show_settings() -> None:
    """Every default and the GAMEDAY_* variable that overrides it (exit 2 when a value is not accepted)."""
    bad: list[GameDayError] = []
    for setting in settings.SETTINGS.values():
        try:
            value = repr(settings.get(setting.name))
        except GameDayError as exc:
            bad.append(exc)
            value = "[red]not accepted[/red]"
        console.print(f"[bold]{setting.env}[/bold] = {value}  [dim]{setting.help} ({setting.accepts()})[/dim]",
                      highlight=False)
    if bad:
        raise bad[0]


def _command_path(context: click.Context | None, argv: list[str]) -> str:
    """``gameday cluster up``: the command a usage error is about (from its context, else the words given)."""
    if context is not None:
        names = []
        while context is not None and context.parent is not None:
            names.append(context.info_name or "")
            context = context.parent
        return " ".join(["gameday", *reversed(names)])
    path, command = ["gameday"], cast(click.Command, cli)
    for word in argv:
        found = command.get_command(click.Context(command), word) if isinstance(command, click.Group) else None
        if found is not None:
            path.append(word)
            command = found
    return " ".join(path)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: GameDayError becomes one line and its exit code, never a traceback."""
    try:
        return cli.main(args=argv, standalone_mode=False)
    except GameDayError as exc:
        signum = received_signal()
        if signum is not None:  # the error is what the interrupt cut short (e.g. an import), not bad input
            err_console.print(f"interrupted by {signal_name(signum)}: everything gameday started has been stopped")
            sys.exit(128 + signum)
        print_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # click's word for a KeyboardInterrupt (or our Interrupted) in a command
        signum = interrupt_signal(exc.__context__)
        err_console.print(f"interrupted by {signal_name(signum)}: everything gameday started has been stopped")
        sys.exit(128 + signum)
    except click.ClickException as exc:
        # one line, like every other bad input: the message and where to read the command's options
        message = "; ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
        hint = f"see `{_command_path(getattr(exc, 'ctx', None), sys.argv[1:] if argv is None else argv)} --help`"
        err_console.print(Text.assemble(("error:", "red"), f" {message} ({hint})"), highlight=False)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        signum = interrupt_signal(exc)
        err_console.print(f"interrupted by {signal_name(signum)}: everything gameday started has been stopped")
        sys.exit(128 + signum)


if __name__ == "__main__":
    main()
