"""Runbooks as tests: parse a team's runbook, bind its placeholders, run it against a rehearsal, list its drift.

    from gameday.runbook import parse_runbook
    book = parse_runbook(Path("docs/rollback.md"))

``gameday runbook check RUNBOOK`` runs it (see :mod:`gameday.runbook.cli`); a game day can
follow one section as its act phase (:mod:`gameday.runbook.follow`).
"""

from gameday.runbook.model import Command, Runbook, RunbookError, Section, Step, Target
from gameday.runbook.parse import parse_runbook

__all__ = ["Command", "Runbook", "RunbookError", "Section", "Step", "Target", "parse_runbook"]
