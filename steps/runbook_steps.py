"""Runbooks as tests: check a team's runbook against the rehearsal, and list its drift.

Following a runbook section as the act phase of a game day is a Kubernetes step
(``the on-call engineer follows section "..." of runbook "..."``); these steps check a
whole runbook and say what must be found.
"""

from __future__ import annotations

from gameday.steps._words import step
from pytest_bdd import then, when

from gameday.errors import RehearsalFailed

NAMES = {"runbook": "runbook"}


@when(step('runbook "{runbook}" is checked against the rehearsal'), target_fixture="runbook_check")
def check_runbook(kubernetes_rehearsal, runbook):
    """Run every section of the runbook against the rehearsal; its findings are kept for the next steps.
    Example: When runbook "runbooks/checkout-api.md" is checked against the rehearsal"""
    return kubernetes_rehearsal.check_runbook(runbook)


@then(step("the runbook check lists exactly this drift:"))
def drift_listed(runbook_check, datatable):
    """The drift found, by line and kind, is exactly the table's (line | kind).
    Example: Then the runbook check lists exactly this drift:"""
    from gameday.runbook.check import expect_drift

    expect_drift(runbook_check, datatable)


@then(step("the runbook check finds no drift"))
def no_drift(runbook_check):
    """Every step ran or is manual, and nothing in the runbook has drifted.
    Example: Then the runbook check finds no drift"""
    if runbook_check.exit_code != 0:
        found = "; ".join(f"line {f.line}: {f.message}" for f in runbook_check.findings) or "a step failed"
        raise RehearsalFailed(f"runbook {runbook_check.runbook.path.name} is not current: {found}")
