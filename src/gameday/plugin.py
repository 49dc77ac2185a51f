"""The pytest plugin (``pytest11`` entry point ``gameday``): options only, until a run opts in.

Installing gameday must not change unrelated pytest runs: this entry point adds the
``--gameday*`` options and nothing else.  A run opts in with ``--gameday``, with
``gameday = true`` in its pytest ini, or with ``-p gameday.library`` (what `gameday run`
does); only then are the step library, the fixtures (``journal``, ``database``, ...) and
the reports loaded, from :mod:`gameday.library`.
"""

from __future__ import annotations

import pytest

LIBRARY = "gameday.library"


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
        "a run writes <dir>/<run-id>/journal.json, junit.xml, summary.md and report.html",
    )
    group.addoption("--gameday-run-id", default=None, help="run id (default: timestamp + random suffix)")
    group.addoption("--gameday-no-reports", action="store_true", default=False, help="keep the journal in memory only")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getoption("--gameday") or config.getini("gameday")
    if wanted and not config.pluginmanager.has_plugin(LIBRARY):
        # pytest_configure is historic: the library's own runs as it registers
        config.pluginmanager.import_plugin(LIBRARY)
