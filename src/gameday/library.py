"""The game-day library for pytest: step library, fixtures, journal and reports.

Loaded only when a run asks for it (``gameday run``, ``pytest --gameday``, ``gameday = true``
in the pytest ini, or ``-p gameday.library``; see :mod:`gameday.plugin`).  It loads the
step library (every module of ``gameday.steps``) and the provider fixtures
(``gameday.fixtures``), keeps one :class:`~gameday.journal.Journal` per session fed from
pytest-bdd's hooks, and writes ``journal.json``, ``junit.xml``, ``summary.md`` and
``report.html`` into ``--gameday-reports/<run-id>/`` when the session ends.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest

from gameday import lifecycle, settings
from gameday.errors import GameDayError, RehearsalFailed
from gameday.journal import Journal, Status

_JOURNAL_KEY = pytest.StashKey[Journal]()


def _library_modules(package: str) -> list[str]:
    module = importlib.import_module(package)
    return [
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules(module.__path__)
        if not info.name.startswith("_")
    ]


# pytest registers step definitions and fixtures found in these modules for every test.
pytest_plugins = _library_modules("gameday.fixtures") + _library_modules("gameday.steps")


# Tags of the shipped features, registered so they pass --strict-markers anywhere.
SHIPPED_TAGS = ("database", "backup", "migrations", "kubernetes", "rollback", "aws", "ecs", "rds")


def pytest_configure(config: pytest.Config) -> None:
    from pathlib import Path

    from gameday.runinfo import describe_run

    project = config.getoption("--gameday-config")
    journal = Journal(run_id=config.getoption("--gameday-run-id"))
    journal.environment.update(describe_run(features=[Path(project).parent] if project else []))
    config.stash[_JOURNAL_KEY] = journal
    for tag in SHIPPED_TAGS:
        config.addinivalue_line("markers", f"{tag}: gameday feature tag")


def run_journal(config: pytest.Config) -> Journal | None:
    """The run's journal, once the library is configured (for plugins outside a fixture)."""
    return config.stash.get(_JOURNAL_KEY, None)


@pytest.fixture(scope="session")
def journal(request: pytest.FixtureRequest) -> Journal:
    """The run journal; engine calls record measurements and events into it."""
    return request.config.stash[_JOURNAL_KEY]


def _scenario_status(excinfo: Any) -> tuple[Status, str]:
    exc = excinfo if isinstance(excinfo, BaseException) else None
    if exc is None:
        return Status.PASSED, ""
    if isinstance(exc, (RehearsalFailed, AssertionError)):
        return Status.FAILED, _one_line(exc)
    if isinstance(exc, GameDayError):
        return Status.ERROR, exc.one_line()
    return Status.ERROR, _one_line(exc)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, GameDayError):
        return exc.one_line()
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def pytest_bdd_before_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    journal = request.config.stash[_JOURNAL_KEY]
    tags = sorted(set(getattr(scenario, "tags", ()) or ()) | set(getattr(feature, "tags", ()) or ()))
    journal.begin_scenario(_scenario_name(request, scenario), feature=feature.name or feature.rel_filename,
                           tags=tags, test_id=request.node.nodeid)


def _scenario_name(request: pytest.FixtureRequest, scenario: Any) -> str:
    """An outline's name with its example row, so each row reads as its own scenario."""
    callspec = getattr(request.node, "callspec", None)
    example = callspec.params.get("_pytest_bdd_example") if callspec is not None else None
    name = str(scenario.name)
    if not example or any(str(value) in name for value in example.values()):
        return name  # the outline's name already tells its rows apart
    return f"{name} [{', '.join(f'{k}={v}' for k, v in example.items())}]"


def pytest_bdd_before_step_call(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, step_func: Any, step_func_args: Any) -> None:
    request.config.stash[_JOURNAL_KEY].begin_step(step.keyword, step.name)


def pytest_bdd_after_step(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, step_func: Any, step_func_args: Any) -> None:
    open_step = request.config.stash[_JOURNAL_KEY].open_step
    if open_step is not None:
        open_step.finish(Status.PASSED)


def pytest_bdd_step_error(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, step_func: Any, step_func_args: Any, exception: BaseException) -> None:
    journal = request.config.stash[_JOURNAL_KEY]
    open_step = journal.open_step
    if open_step is None:
        return
    signum = lifecycle.received_signal()
    if signum is not None:
        # the step failed after a SIGINT/SIGTERM reached the run: whatever it raised is what the signal's
        # cleanup cut short (a server stopped under a wait), so the run ends here, interrupted
        said = lifecycle.signal_name(signum)
        open_step.finish(Status.INTERRUPTED, f"interrupted by {said} (the step then raised {_one_line(exception)})")
        journal.interrupt(said, request.node.nodeid)
        request.session.shouldstop = f"interrupted by {said}"
        return
    died = lifecycle.dead_parts()
    if died:
        # the harness could not do its job: an ERROR naming the part, never the rollback's failure
        for gone in died:
            journal.event("harness-part-died", gone)
        open_step.finish(Status.ERROR, f"harness part died during this step: {'; '.join(died)} "
                                       f"(so: {_one_line(exception)})")
        shared = [gone for gone in died if gone.shared]
        if shared:  # the cluster or moto every later scenario stands on is gone: stop cleanly, say why
            reason = f"stopped after this scenario: {'; '.join(shared)}; the scenarios after it were not run"
            journal.stop_early(reason)
            request.session.shouldstop = reason
        return
    open_step.finish(*_scenario_status(exception))


def pytest_bdd_step_func_lookup_error(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, exception: BaseException) -> None:
    journal = request.config.stash[_JOURNAL_KEY]
    failed = journal.begin_step(step.keyword, step.name)
    failed.finish(
        Status.ERROR,
        f'no step definition matches "{step.keyword} {step.name}" '
        f"({feature.rel_filename}:{step.line_number}; see `gameday steps` for the step library)",
    )


def pytest_bdd_after_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    journal = request.config.stash[_JOURNAL_KEY]
    current = journal.current_scenario
    if current is None:
        return
    journal.scenario_ending()
    failed_steps = [s for s in current.steps if s.status in (Status.FAILED, Status.ERROR)]
    if failed_steps:
        worst = Status.ERROR if any(s.status == Status.ERROR for s in failed_steps) else Status.FAILED
        current.finish(worst, failed_steps[0].error)
    elif any(m.passed is False for m in current.all_measurements()):
        missed = [m.name for m in current.all_measurements() if m.passed is False]
        current.finish(Status.FAILED, "targets missed: " + ", ".join(missed))
    else:
        current.finish(Status.PASSED)
    journal.tearing_down = current


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    # the scenario's own fixtures tear down inside this hook: their events are the scenario's;
    # what comes after (session fixtures, the cluster stopping) is the run's
    try:
        return (yield)
    finally:
        journal = run_journal(item.config)
        if journal is not None:
            journal.tearing_down = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test that failed outside any step (a fixture, a hook) must not read as passed."""
    report = yield
    journal = item.config.stash.get(_JOURNAL_KEY, None)
    if report.failed and journal is not None and call.excinfo is not None:
        status, message = _scenario_status(call.excinfo.value)
        scenario = next((s for s in reversed(journal.scenarios) if s.test_id == item.nodeid), None)
        if scenario is None:
            journal.begin_scenario(item.name, test_id=item.nodeid).finish(status, f"{report.when}: {message}")
        elif scenario.end is None:
            scenario.finish(status, message)
        elif scenario.status == Status.PASSED:
            scenario.status, scenario.error = status, message
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    journal = config.stash.get(_JOURNAL_KEY, None)
    if journal is None or not journal.scenarios or config.getoption("--gameday-no-reports"):
        return
    # pytest says INTERRUPTED also when a dead harness part stopped the run on purpose (shouldstop)
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED and not any(
        e.kind == "run-stopped" for e in journal.loose.events)
    status = Status.INTERRUPTED if interrupted else None
    signum = lifecycle.received_signal()
    if signum is not None and journal.interrupted_by is None:  # the exit code is the signal's: so is the journal
        journal.interrupt(lifecycle.signal_name(signum))
    for scenario in journal.scenarios:
        if scenario.end is None:
            scenario.finish(Status.INTERRUPTED, "run interrupted")
    journal.finish(status)
    root = Path(config.getoption("--gameday-reports") or settings.get("reports"))
    from gameday.report import write_reports

    out = write_reports(journal, root / journal.run_id)
    config.stash[_REPORT_DIR_KEY] = out


_REPORT_DIR_KEY = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    out = config.stash.get(_REPORT_DIR_KEY, None)
    if out is not None:
        terminalreporter.write_line(f"gameday reports: {out}")
