"""Reports, all rendered from the journal alone (journal.json is the single source)."""

from __future__ import annotations

from pathlib import Path

from gameday.journal import Journal, JournalRecord
from gameday.report.html import render_html
from gameday.report.incident import render_incident
from gameday.report.junit import render_junit
from gameday.report.summary import render_summary


def write_reports(journal: Journal, out: Path) -> Path:
    """Write journal.json, then render junit.xml, summary.md, report.html and incident.md from what was written."""
    path = journal.write(out)
    render_all(_load(path), out)
    return out


def render_all(data: JournalRecord, out: Path) -> None:
    (out / "junit.xml").write_text(render_junit(data))
    (out / "summary.md").write_text(render_summary(data))
    (out / "report.html").write_text(render_html(data))
    (out / "incident.md").write_text(render_incident(data))


def _load(path: Path) -> JournalRecord:
    from gameday.journal import load

    return load(path)
