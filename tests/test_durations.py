"""One reader of durations for every step and table: the same words accepted everywhere."""

from __future__ import annotations

import pytest

from gameday.durations import seconds


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
