"""Trigger rules on synthetic records: sustained conditions, baselines, scaling, data, wait."""

from __future__ import annotations

import time

import pytest

from gameday.errors import ConfigError
from gameday.load.baseline import Baseline
from gameday.load.records import RequestRecord
from gameday.load.triggers import (
    AllOf,
    ErrorRateAbove,
    ErrorRateAtMost,
    ErrorRateBelow,
    LatencyAbove,
    LatencyAtMost,
    LatencyBelow,
    TriggerTimeout,
    VersionShare,
    trigger_from_data,
)


def traffic(start: float, end: float, *, rate: float = 10, status: int = 200, latency_ms: float = 5.0,
            version: str = "1.0.0") -> list[RequestRecord]:
    count = int((end - start) * rate)
    return [RequestRecord(ts=start + i / rate, method="GET", path="/api/orders", status=status,
                          latency_ms=latency_ms, version=version) for i in range(count)]


# Healthy until t=100, then every request fails until t=130.
BREAK = traffic(0, 100) + traffic(100, 130, status=500, version="2.0.0")


def test_error_rate_above_needs_the_condition_for_the_whole_period() -> None:
    rule = ErrorRateAbove(threshold=0.05, for_seconds=10, window_seconds=2)
    assert not rule.evaluate(BREAK, now=99)
    assert not rule.evaluate(BREAK, now=105)  # errors for 5 s only
    assert not rule.evaluate(BREAK, now=109.9)  # the oldest check (t=99.9) saw no errors yet
    assert rule.evaluate(BREAK, now=110.5)  # every check since t=100.5 saw > 5 % errors


def test_without_for_seconds_one_window_decides() -> None:
    rule = ErrorRateAbove(threshold=0.05, window_seconds=2)
    assert rule.evaluate(BREAK, now=100.5)
    assert not rule.evaluate(BREAK, now=99.9)


def test_too_few_requests_prove_nothing() -> None:
    sparse = traffic(0, 10, rate=1, status=500)
    assert not ErrorRateAbove(threshold=0.05, window_seconds=2, min_requests=5).evaluate(sparse, now=9)
    assert ErrorRateAbove(threshold=0.05, window_seconds=2, min_requests=2).evaluate(sparse, now=9)


def test_recovery_rules() -> None:
    records = BREAK + traffic(130, 150, version="1.0.0")
    recovered = AllOf((ErrorRateAtMost(threshold=0.0, for_seconds=5, window_seconds=1),
                       VersionShare("1.0.0", at_least=1.0, for_seconds=5, window_seconds=1)))
    assert not recovered.evaluate(records, now=133)
    assert recovered.evaluate(records, now=136.5)
    assert VersionShare("2.0.0", at_least=0.5, window_seconds=4).evaluate(records, now=131)
    assert not VersionShare("2.0.0", at_least=0.5, window_seconds=4).evaluate(records, now=133)


def test_latency_above_a_factor_of_the_baseline() -> None:
    records = traffic(0, 60, latency_ms=40) + traffic(60, 80, latency_ms=400)
    rule = LatencyAbove(p=95, factor=2.0, for_seconds=5, window_seconds=2).with_baseline(records[:600])
    assert rule.baseline_ms == 40 and rule.threshold_ms == 80
    assert not rule.evaluate(records, now=59)
    assert rule.evaluate(records, now=67.5)
    with pytest.raises(ConfigError, match="baseline"):
        LatencyAbove(for_seconds=1).evaluate(records, now=70)


def test_latency_floor_keeps_loopback_noise_from_firing() -> None:
    rule = LatencyAbove(p=95, factor=2.0, baseline_ms=1.0, min_ms=20)
    assert rule.threshold_ms == 20
    assert not rule.evaluate(traffic(0, 5, latency_ms=3), now=5)


def test_scaled_rule_rehearses_two_minutes_in_ten_seconds() -> None:
    rule = ErrorRateAbove(threshold=0.05, for_seconds=120, window_seconds=30).scaled(12)
    assert (rule.for_seconds, rule.window_seconds) == (10, 2.5)
    both = AllOf((rule, VersionShare("1.0.0", for_seconds=60))).scaled(2)
    assert both.lookback() == pytest.approx(max(5 + 1.25, 30 + 2.5))


def test_rules_from_data() -> None:
    rule = trigger_from_data({"error-rate-above": {"threshold": 0.05, "for_seconds": 120, "window_seconds": 30}})
    assert rule == ErrorRateAbove(threshold=0.05, for_seconds=120, window_seconds=30)
    both = trigger_from_data({"all-of": [{"error-rate-at-most": {"threshold": 0.01}},
                                         {"version-share": {"version": "1.0.0"}}]})
    assert isinstance(both, AllOf) and both.rules[1] == VersionShare("1.0.0")


# 10 req/s; from t=0 to t=30 one request in ten fails (10 %) and p95 is 300 ms; from t=30 on
# none fails, p95 is 100 ms and release 3.1.0 serves three requests in four.
RECOVERY = [
    RequestRecord(ts=i / 10, method="GET", path="/cart", status=500 if i % 10 == 0 and i < 300 else 200,
                  latency_ms=300.0 if i < 300 else 100.0,
                  version="3.1.0" if i >= 300 and i % 4 else "3.2.0-bad")
    for i in range(600)
]


@pytest.mark.parametrize(
    "data, rule, held_at, not_at",
    [
        # error rate below X % held for S s: strictly below
        ({"error-rate-below": {"threshold": 0.1, "for_seconds": 10, "window_seconds": 5}},
         ErrorRateBelow(threshold=0.1, for_seconds=10, window_seconds=5), 45, 25),
        ({"error-rate-at-most": {"threshold": 0.05, "for_seconds": 10, "strict": True}},
         ErrorRateAtMost(threshold=0.05, for_seconds=10, strict=True), 45, 38),
        # pN below M ms held
        ({"latency-below": {"p": 95, "below_ms": 300, "for_seconds": 5}},
         LatencyBelow(p=95, below_ms=300, for_seconds=5), 40, 20),
        ({"latency-at-most": {"p": 95, "above_ms": 300, "for_seconds": 5}},
         LatencyAtMost(p=95, above_ms=300, for_seconds=5), 20, None),
        # pN within k x baseline held (the baseline's p95 was 60 ms: 2 x 60 = 120 ms)
        ({"latency-at-most": {"p": 95, "factor": 2, "baseline_ms": 60, "for_seconds": 5}},
         LatencyAtMost(p=95, factor=2, for_seconds=5).with_baseline_value(60), 40, 20),
        # release R serves at least P % of traffic held
        ({"version-share": {"version": "3.1.0", "at_least": 0.7, "for_seconds": 10}},
         VersionShare("3.1.0", at_least=0.7, for_seconds=10), 45, 35),
        ({"version-share": {"version": "3.1.0", "at_least": 0.8, "for_seconds": 10}},
         VersionShare("3.1.0", at_least=0.8, for_seconds=10), None, 45),
    ],
)
def test_recovery_rules_from_data(data: dict[str, object], rule: object, held_at: float | None,
                                  not_at: float | None) -> None:
    parsed = trigger_from_data(data)
    assert parsed == rule
    if held_at is not None:
        assert parsed.evaluate(RECOVERY, now=held_at)
    if not_at is not None:
        assert not parsed.evaluate(RECOVERY, now=not_at)


def test_strict_bounds_and_descriptions() -> None:
    tenth = [RequestRecord(ts=i / 10, method="GET", path="/", status=500 if i % 10 == 0 else 200,
                           latency_ms=50.0) for i in range(50)]
    assert ErrorRateAtMost(threshold=0.1).evaluate(tenth, now=4.95)
    assert not ErrorRateBelow(threshold=0.1).evaluate(tenth, now=4.95)  # 10 % is not below 10 %
    assert LatencyAtMost(p=50, above_ms=50).evaluate(tenth, now=4.95)
    assert not LatencyBelow(p=50, below_ms=50).evaluate(tenth, now=4.95)
    assert ErrorRateBelow(threshold=0.01, for_seconds=30).describe() == "error rate < 1.0% for 30s"
    assert LatencyBelow(p=99, below_ms=250).describe() == "p99 latency < 250.0ms"
    assert LatencyAtMost(p=95, factor=2).with_baseline_value(40).describe() == "p95 latency <= 80.0ms"
    assert ErrorRateBelow(threshold=0.01, for_seconds=30).scaled(10) == ErrorRateBelow(
        threshold=0.01, for_seconds=3, window_seconds=0.5)


def test_latency_rules_take_a_captured_baseline() -> None:
    baseline = Baseline(requests=100, error_rate=0.0, p50_ms=10.0, p95_ms=30.0, p99_ms=45.0,
                        versions={"3.1.0": 1.0}, start=0.0, end=5.0)
    assert LatencyAbove(p=95, factor=3).with_baseline(baseline).threshold_ms == 90
    assert LatencyAtMost(p=99, factor=2).with_baseline(baseline).baseline_ms == 45
    assert LatencyAbove(p=95).with_baseline_value(12.5).baseline_ms == 12.5
    with pytest.raises(ConfigError, match="no p90 latency"):
        LatencyAbove(p=90).with_baseline(baseline)
    with pytest.raises(ConfigError, match="must be >= 0"):
        LatencyAbove(p=95).with_baseline_value(-1)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"error-rate-over": {}}, "unknown trigger"),
        ({"error-rate-at-most": {"strict": 1}}, "strict=1 has the wrong type"),
        ({"latency-below": {"below_ms": "300ms"}}, "below_ms='300ms' has the wrong type"),
        ({"error-rate-above": {"treshold": 0.05}}, "no option treshold"),
        ({"error-rate-above": {"threshold": "5%"}}, "wrong type"),
        ({"version-share": {"at_least": 1.0}}, "version-share needs version"),
        ({"version-share": {"version": "1", "at_least": 0}}, "0 < at_least"),
        ({"error-rate-above": {"for_seconds": -1}}, "for_seconds >= 0"),
        ({"all-of": {}}, "needs a list"),
        ([], "one mapping"),
    ],
)
def test_bad_rule_data_names_the_place(data: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        trigger_from_data(data, where="scenarios/x.yaml detect")
    assert caught.value.message.startswith("scenarios/x.yaml detect")


class GrowingRecords:
    """A record source whose traffic turns bad at a known wall-clock moment."""

    def __init__(self, turns_bad_at: float) -> None:
        self.turns_bad_at = turns_bad_at
        self.running = True

    def records(self, since: float | None = None) -> list[RequestRecord]:
        now = time.time()
        good = traffic(now - 5, min(now, self.turns_bad_at), rate=50)
        bad = traffic(self.turns_bad_at, now, rate=50, status=500) if now > self.turns_bad_at else []
        return [r for r in good + bad if since is None or r.ts >= since]


def test_wait_returns_the_moment_the_rule_first_held() -> None:
    breaks_at = time.time() + 0.3
    rule = ErrorRateAbove(threshold=0.5, for_seconds=0.4, window_seconds=0.2, min_requests=3)
    held_at = rule.wait(GrowingRecords(breaks_at), timeout=5, interval=0.02)
    # The earliest it can hold: the oldest check (held_at - 0.4) must see > 50 % errors in
    # its 0.2 s window, so at least 0.4 + 0.1 s after the break.
    assert breaks_at + 0.45 <= held_at <= breaks_at + 1.5


def test_wait_times_out_with_the_last_observation() -> None:
    rule = ErrorRateAbove(threshold=0.5, window_seconds=0.2)
    with pytest.raises(TriggerTimeout, match="error rate 0.0% over"):
        rule.wait(GrowingRecords(time.time() + 60), timeout=0.3, interval=0.05)


def test_wait_stops_when_the_load_stops() -> None:
    source = GrowingRecords(time.time() + 60)
    source.running = False
    with pytest.raises(TriggerTimeout, match="load generator stopped"):
        ErrorRateAbove().wait(source, timeout=30)
