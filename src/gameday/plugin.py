"""The pytest plugin (``pytest11`` entry point ``gameday``): options only, until a run opts in.

Installing gameday must not change unrelated pytest runs: this entry point adds the
``--gameday*`` options and nothing else.  A run opts in with ``--gameday``, with
``gameday = true`` in its pytest ini, or with ``-p gameday.library`` (what `gameday run`
does); only then are the step library, the fixtures (``journal``, ``database``, ...) and
the reports loaded, from :mod:`gameday.library`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import pytest

LIBRARY = "gameday.library"
INTERRUPTS = "gameday-interrupts"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gameday")
    group.addoption("--gameday", action="store_true", default=False,
                    help="load gameday's step library, fixtures and reports for this run")
    parser.addini("gameday", type="bool", default=False, help="load gameday's step library, fixtures and reports")
    group.addoption("--gameday-config", default=None,
                    help="project file (default: $GAMEDAY_CONFIG, else the nearest gameday.yaml upward, "
                         "else the shipped demo project)")
    group.addoption(
        "--gameday-reports",
        default=None,
        help="directory for run reports (default: $GAMEDAY_REPORTS or ./reports); "
        "a run writes <dir>/<run-id>/journal.json, junit.xml, summary.md, incident.md and report.html",
    )
    group.addoption("--gameday-run-id", default=None, help="run id (default: timestamp + random suffix)")
    group.addoption("--gameday-no-reports", action="store_true", default=False, help="keep the journal in memory only")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getoption("--gameday") or config.getini("gameday")
    if wanted and not config.pluginmanager.has_plugin(LIBRARY):
        # pytest_configure is historic: the library's own runs as it registers
        config.pluginmanager.import_plugin(LIBRARY)
    if config.pluginmanager.has_plugin(LIBRARY) and not config.pluginmanager.has_plugin(INTERRUPTS):
        config.pluginmanager.register(_Interrupts(config), INTERRUPTS)


class _Interrupts:
    """A game-day run stopped by Ctrl-C or SIGTERM: the whole session ends at once, and the
    journal (so every report) says the run and the scenario cut short were INTERRUPTED,
    by which signal -- never passed."""

    def __init__(self, config: pytest.Config) -> None:
        from gameday import lifecycle

        self.config = config
        self._run = contextlib.ExitStack()
        self._run.enter_context(lifecycle.run_in_progress())  # SIGTERM ends the session, as SIGINT does

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from gameday import lifecycle

        lifecycle.catch_dropped_interrupts()  # in front of the hook pytest put in at configure

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._run.close()

    def _interrupt(self, exc: BaseException, test_id: str | None = None) -> None:
        from gameday import library, lifecycle

        journal = library.run_journal(self.config)
        if journal is not None:
            journal.interrupt(lifecycle.signal_name(lifecycle.interrupt_signal(exc)), test_id)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        try:
            return (yield)
        except KeyboardInterrupt as exc:  # pytest-bdd has closed the scenario (as passed) by now
            self._interrupt(exc, item.nodeid)
            raise

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # any phase: a fixture's setup, collection, between tests; before the reports are written
        # pytest's own Interrupted (a KeyboardInterrupt too) is a stop the run asked for, not a signal
        if isinstance(excinfo.value, KeyboardInterrupt) and not isinstance(excinfo.value, pytest.Session.Interrupted):
            self._interrupt(excinfo.value)
