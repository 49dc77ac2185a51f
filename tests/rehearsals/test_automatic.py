"""Automatic rollback rules and actions as the feature writes them (no cluster: the words only)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from gameday.errors import ConfigError
from gameday.load.records import RequestRecord
from gameday.load.triggers import ErrorRateAbove, HealthChecksFailingAbove, LatencyAbove
from gameday.rehearsals.automatic import Action, AutomaticRollback, Rule, action_from_text, rules_from_table
from gameday.timeline import RollbackTimeline

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


class MarginalErrors:
    """A service that fails exactly 1 request in 10 from ``breaks_at`` on (40 requests/s), the
    canary's share of a half-failing release: twice a 5 % threshold, so a window must be more
    than half in the bad stretch before the rule holds on it."""

    def __init__(self, breaks_at: float) -> None:
        self.breaks_at = breaks_at
        self.start = breaks_at - 3

    def records(self, since: float | None = None) -> list[RequestRecord]:
        now, out = time.time(), []
        for i in range(int((now - self.start) * 40)):
            at = self.start + i / 40
            bad = at >= self.breaks_at and round((at - self.breaks_at) * 40) % 10 == 0
            if since is None or at >= since:
                out.append(RequestRecord(ts=at, method="GET", path="/", status=503 if bad else 200, latency_ms=0))
        return out


def test_an_automatic_rollback_is_detected_when_its_rule_held_so_decide_is_its_own_delay():
    """With a marginal error rate the rule holds well after the bad stretch began plus its
    duration (its windows fill first).  Detected is the first instant the rule held, placed
    between two evaluations, so decide is the evaluation interval and the action, not the
    windows' filling (that is detection)."""
    rule = Rule("error rate above 5 % for 1 s", ErrorRateAbove(threshold=0.05, for_seconds=1, window_seconds=2))
    acted: list[float] = []
    automatic = AutomaticRollback([rule], Action("noting the moment", run=lambda r: acted.append(time.time())))
    service = MarginalErrors(breaks_at=time.time() + 0.5)
    events: list[dict[str, Any]] = []
    r = SimpleNamespace(live=None, timeline=RollbackTimeline(), watched={}, require_load=lambda: service,
                        _event=lambda kind, message, **data: events.append(data))
    r.timeline.mark("t0", service.start)
    assert automatic.fire_within(r, timeout=20) is rule
    [event] = events
    detected = r.timeline.marks["detected"]
    records = service.records()
    assert not rule.trigger.evaluate(records, detected - 0.02)
    assert rule.trigger.evaluate(records, detected)
    # the bad stretch + 1 s is when an ideal alarm holds; the rule's 2 s window is still mostly healthy then
    began = rule.trigger.moment(records, service.start, detected)
    assert began == pytest.approx(service.breaks_at + 1, abs=0.03)
    assert detected - began > 0.8
    assert event["held_at"] == pytest.approx(detected, abs=0.001)
    assert 0 <= acted[0] - detected <= automatic.interval + 0.2
