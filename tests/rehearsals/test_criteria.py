"""The runbook's success criteria as the feature writes them (no cluster: the words only)."""

from __future__ import annotations

import pytest

from gameday.errors import ConfigError
from gameday.rehearsals.criteria import Criteria, criteria_from_table

HEADER = ["criterion", "bound"]


def test_the_runbooks_criteria_read_as_bounds():
    assert criteria_from_table([HEADER, ["error rate", "< 1 %"], ["p99 latency", "< 2000 ms"], ["replicas", "match"],
                                ["restarts", "0"]]) == Criteria(1.0, (99.0, 2000.0), True, 0)


@pytest.mark.parametrize(("rows", "words"), [
    ([["check", "bound"]], "must start with the header row | criterion | bound |"),
    ([HEADER], "has only its header"),
    ([HEADER, ["error rate", "1 %"]], "row 2: 'error rate' with bound '1 %' is not a criterion"),
    ([HEADER, ["p99 latency", "< 2 s"]], "'p99 latency' with bound '< 2 s'"),
    ([HEADER, ["restarts", "none"]], "'restarts' with bound 'none'"),
    ([HEADER, ["cpu", "< 90 %"]], "'cpu' with bound '< 90 %' is not a criterion"),
    ([HEADER, ["restarts", "0"], ["restarts", "1"]], "row 3: 'restarts' is given twice"),
])
def test_a_bad_criteria_table_names_the_row_and_the_fix(rows, words):
    with pytest.raises(ConfigError) as caught:
        criteria_from_table(rows)
    assert words in caught.value.message and caught.value.fix
