"""Rules replayed on recorded traffic: when each would fire, and its false alarms at full and low traffic."""

from __future__ import annotations

from gameday.load.backtest import backtest, episodes, holding_times
from gameday.load.records import RequestRecord
from gameday.load.triggers import ErrorRateAbove, LatencyAbove

T0 = 1000.0


def traffic(*, healthy_s: float = 30, bad_s: float = 20, rate: int = 40, spike_every: int = 0) -> list[RequestRecord]:
    """``rate`` requests/s: healthy (2 ms; every ``spike_every``-th one 60 ms) before T0, then half failing."""
    records = []
    n = 0
    step = 1 / rate
    at = T0 - healthy_s
    while at < T0 + bad_s:
        n += 1
        bad = at > T0 and n % 2 == 0
        slow = spike_every and n % spike_every == 0
        records.append(RequestRecord(ts=at, method="GET", path="/", status=500 if bad else 200,
                                     latency_ms=60.0 if slow else 2.0))
        at += step
    return records


def test_the_error_rule_would_fire_after_its_duration_and_never_on_healthy_traffic():
    rule = ErrorRateAbove(threshold=0.05, for_seconds=4)
    [row] = backtest([("errors", rule)], traffic(), t0=T0, healthy=[(T0 - 30, T0)])
    assert row.fires_at is not None and 4 <= row.fires_at <= 4 + 1.0  # 4 s held, then the next poll
    assert row.false_alarms == 0 and row.healthy_s == 30
    assert row.low_traffic_one_in > 1 and 6 <= row.low_traffic_per_window <= 10
    assert row.low_traffic_fires_at is not None and row.low_traffic_false_alarms == 0


def test_a_p95_rule_is_quiet_at_full_traffic_and_noisy_at_low_traffic():
    # one request in 37 is slow: p95 of a 200-request window stays at 2 ms, of an 8-request window it is the spike
    rule = LatencyAbove(p=95, above_ms=30, for_seconds=1)
    [row] = backtest([("p95", rule)], traffic(spike_every=37), t0=T0, healthy=[(T0 - 30, T0)])
    assert row.false_alarms == 0
    assert row.low_traffic_false_alarms >= 1
    assert row.fires_at is None  # the bad release fails fast, it is not slow


def test_a_rule_that_cannot_hold_never_fires():
    [row] = backtest([("errors above 60 %", ErrorRateAbove(threshold=0.6, for_seconds=2))], traffic(), t0=T0,
                     healthy=[(T0 - 30, T0)])
    assert row.fires_at is None and row.low_traffic_fires_at is None


def test_episodes_count_separate_stretches():
    assert episodes([]) == 0
    assert episodes([1.0, 1.5, 2.0, 5.0, 5.5]) == 2
    times = holding_times(ErrorRateAbove(threshold=0.05, for_seconds=0), traffic(), T0 - 10, T0 + 10)
    assert episodes(times) == 1 and times[0] > T0
