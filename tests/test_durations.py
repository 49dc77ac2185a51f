"""One reader of durations for every step and table: the same words accepted everywhere."""

from __future__ import annotations

import pytest

from gameday.durations import go_seconds, seconds
from gameday.runbook.parse import stated_targets


@pytest.mark.parametrize(("text", "expected"), [
    ("90 s", 90), ("90s", 90), ("1.5 seconds", 1.5), ("2 min", 120), ("2 MIN", 120), ("1 minute", 60), ("5 m", 300),
    ("3 secs", 3),
])
def test_the_words_runbooks_use(text, expected):
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["soon", "", "90", "-5 s", "5 hours", "inf s", "1e3 s", "s"])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        seconds(text)


def test_a_bare_number_is_seconds_only_where_allowed_and_zero_only_where_allowed():
    assert seconds("90", bare=True) == 90 and seconds("0 s") == 0
    with pytest.raises(ValueError, match="must be more than 0"):
        seconds("0 s", positive=True)


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", 90), ("2m", 120), ("1m30s", 90), ("1h", 3600), ("500ms", 0.5), ("1.5s", 1.5), ("60", 60), ("2h0m5s", 7205),
])
def test_a_command_flag_as_go_writes_it(text, expected):
    assert go_seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "5 s", "2min", "1m30", "s", "-5s", "5x"])
def test_a_command_flag_that_is_no_go_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        go_seconds(text)


@pytest.mark.parametrize(("said", "expected"), [
    ("Target Time: < 2 minutes", 120), ("within 500 ms", 0.5), ("within 2 hours", 7200), ("target: 90s", 90),
])
def test_a_runbook_states_its_targets_in_any_of_these_units(said, expected):
    [target] = stated_targets(said, 1)
    assert target.seconds == pytest.approx(expected)
