"""Automatic rollback rules and actions as the feature writes them (no cluster: the words only)."""

from __future__ import annotations

import pytest

from gameday.errors import ConfigError
from gameday.load.records import RequestRecord
from gameday.load.triggers import ErrorRateAbove, HealthChecksFailingAbove, LatencyAbove
from gameday.rehearsals.automatic import action_from_text, rules_from_table

HEADER = ["rule", "threshold", "for"]


def test_the_runbooks_rules_read_as_triggers():
    rules = rules_from_table([HEADER, ["error rate above", "5 %", "2 min"], ["p95 latency above", "2 × baseline", "5 min"],
                              ["p99 latency above", "800 ms", "30 s"], ["Error rate above", "0.5%", "1.5 s"],
                              ["health checks failing above", "50 %", "1 min"]])
    assert [r.trigger for r in rules] == [
        ErrorRateAbove(threshold=0.05, for_seconds=120), LatencyAbove(p=95, factor=2.0, for_seconds=300),
        LatencyAbove(p=99, above_ms=800.0, for_seconds=30), ErrorRateAbove(threshold=0.005, for_seconds=1.5),
        HealthChecksFailingAbove(threshold=0.5, for_seconds=60)]
    assert [r.trigger.source for r in rules] == ["traffic"] * 4 + ["health checks"]
    assert rules[1].text == "p95 latency above 2 × baseline for 5 min"


@pytest.mark.parametrize(("rows", "words"), [
    ([["rule", "limit", "for"]], "must start with the header row | rule | threshold | for |"),
    ([HEADER], "has only its header"),
    ([HEADER, ["error rate above", "5", "2 min"]], "row 2: threshold '5' for 'error rate above' is not a percentage"),
    ([HEADER, ["error rate above", "150 %", "2 min"]], "is not a percentage"),
    ([HEADER, ["error rate above", "5 %", "soon"]], "row 2: duration 'soon' is not one"),
    ([HEADER, ["error rate above", "5 %", "0 s"]], "must be more than 0"),
    ([HEADER, ["p95 latency above", "twice", "1 min"]], "neither 'K × baseline' nor 'N ms'"),
    ([HEADER, ["p42 latency above", "2 × baseline", "1 min"]], "unknown rule 'p42 latency above'"),
    ([HEADER, ["health checks failing above", "half", "1 min"]], "'half' for 'health checks failing above' is not a percentage"),
    ([HEADER, ["error rate above", "5 %", "1 min"], ["cpu above", "90 %", "1 min"]], "row 3: unknown rule 'cpu above'"),
])
def test_a_bad_rules_table_names_the_row_and_the_fix(rows, words):
    with pytest.raises(ConfigError) as caught:
        rules_from_table(rows)
    assert words in caught.value.message and caught.value.fix


def test_the_actions_are_the_on_calls_own():
    assert action_from_text("undoing the rollout").text == "kubectl rollout undo"
    assert action_from_text("switching back to the blue track").text == "the Service's selector back to blue"
    assert action_from_text("draining the canary").text == "the canary's weight to 0 %"
    assert action_from_text('turning feature flag "new-pricing" off').text == "feature flag new-pricing off"
    with pytest.raises(ConfigError, match="'paging someone' is not an action"):
        action_from_text("paging someone")


def checks(at: float, pods: dict[str, bool]) -> list[RequestRecord]:
    return [RequestRecord(ts=at, method="CHECK", path=pod, status=200 if ready else 503, latency_ms=0)
            for pod, ready in pods.items()]


def test_the_health_check_rule_holds_on_the_share_of_failing_checks_for_its_duration():
    rule = HealthChecksFailingAbove(threshold=0.5, for_seconds=2, window_seconds=1)
    healthy = [r for i in range(20) for r in checks(100 + i / 2, {"a": True, "b": True, "c": True})]
    one_down = [r for i in range(20) for r in checks(110 + i / 2, {"a": True, "b": True, "c": False})]
    two_down = [r for i in range(20) for r in checks(120 + i / 2, {"a": True, "b": False, "c": False})]
    records = healthy + one_down + two_down
    assert not rule.evaluate(records, 109.5)  # all healthy
    assert not rule.evaluate(records, 119.5)  # a third failing: not above half
    assert not rule.evaluate(records, 121.0)  # above half, not yet for 2 s
    assert rule.evaluate(records, 123.0)
    assert rule.moment(records, 100, 123.0) == 122.0  # the first failing check of the stretch + 2 s
    assert rule.observe(records, 123.0) == "66.7% of health checks failing (6 checks in the last 1s)"
