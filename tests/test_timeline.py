from __future__ import annotations

import pytest

from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Journal
from gameday.timeline import RollbackTimeline


def timeline() -> RollbackTimeline:
    t = RollbackTimeline(scale=12)
    for name, at in (("t0", 100.0), ("detected", 112.5), ("acted", 113.0), ("done", 120.0), ("recovered", 124.0)):
        t.mark(name, at)
    return t


def test_phases_split_the_total():
    t = timeline()
    assert [t.phase(p) for p in ("detect", "decide", "act", "recover", "total")] == [12.5, 0.5, 7.0, 4.0, 24.0]


def test_record_puts_targets_and_scale_in_the_journal():
    journal = Journal()
    timeline().record(journal, {"act": 5, "total": 30})
    by_name = {m.name: m for m in journal.loose.measurements}
    assert by_name["time to act"].passed is False and by_name["time to rollback (total)"].passed is True
    assert "compressed 12x" in by_name["time to detect"].detail and not by_name["time to act"].detail


def test_require_within_names_every_missed_phase():
    with pytest.raises(RehearsalFailed, match="act 7.0 s > 5 s"):
        timeline().require_within({"act": 5, "detect": 60})
    timeline().require_within({"act": 7, "total": 24})


def test_an_unreached_phase_fails_and_an_unknown_one_is_bad_input():
    partial = RollbackTimeline()
    partial.mark("t0", 1.0)
    with pytest.raises(RehearsalFailed, match="detect was not measured"):
        partial.require_within({"detect": 10})
    with pytest.raises(ConfigError, match="unknown rollback phase"):
        partial.record(None, {"mitigate": 1})


def test_targets_table_reads_seconds_and_minutes_and_refuses_the_rest():
    from gameday.timeline import targets_from_table

    table = [["phase", "target"], ["act", "90 s"], ["total", "5 min"], ["detect", "30"]]
    assert targets_from_table(table) == {"act": 90.0, "total": 300.0, "detect": 30.0}
    with pytest.raises(ConfigError, match="'soon' for phase 'act' is not a duration"):
        targets_from_table([["phase", "target"], ["act", "soon"]])
    with pytest.raises(ConfigError, match="unknown rollback phase 'mitigate'"):
        targets_from_table([["phase", "target"], ["mitigate", "10 s"]])
