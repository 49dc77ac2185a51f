"""Detection and recovery moments against ground truth: a fault switched on and off at known
instants, requests as bursty users make them (every user fires together every 100 ms), the
rules polled every 0.1 s from an anchor that is not the fault's, the moment taken from the
records (Trigger.moment), never from when a poll noticed.  Deterministic: seeded streams."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from gameday.load.records import RequestRecord
from gameday.load.triggers import (
    AllOf,
    ErrorRateAbove,
    ErrorRateAtMost,
    LatencyAbove,
    LatencyBelow,
    Trigger,
    VersionShare,
)

T0 = 1000.0  # the bad deploy (the wait starts here): earlier than the fault
FAULT_ON = T0 + 3.0
FAULT_OFF = FAULT_ON + 6.0  # the fix is in ("done")
POLL = 0.1


@dataclass(frozen=True)
class Fault:
    kind: str  # "errors" | "latency"
    rate: float = 0.5  # share of failed requests while on (errors)
    extra_ms: float = 400.0  # added latency while on (latency)


def stream(users: int, fault: Fault, seed: int, until: float) -> list[RequestRecord]:
    """Requests from ``users`` bursty users: all send together every 100 ms (a little jitter)."""
    rng = random.Random(seed)
    records = []
    tick = T0 - 5 + rng.random() * POLL
    while tick < until:
        for _ in range(users):
            at = tick + rng.random() * 0.004
            on = FAULT_ON <= at < FAULT_OFF
            version = "2.0.0" if T0 <= at < FAULT_OFF else "1.0.0"
            latency = 2.0 + rng.random() * 2
            status = 200
            if on and fault.kind == "errors" and rng.random() < fault.rate:
                status = 503
            if on and fault.kind == "latency":
                latency += fault.extra_ms
            records.append(RequestRecord(ts=at + latency / 1000, method="GET", path="/", status=status,
                                         latency_ms=latency, version=version))
        tick += POLL
    return sorted(records, key=lambda r: r.ts)


def polled(rule: Trigger, records: list[RequestRecord], since: float, anchor: float) -> tuple[float, float]:
    """(the poll that saw the rule hold, the moment computed from the records then visible)."""
    now = anchor
    while now < FAULT_OFF + 30:
        visible = [r for r in records if r.ts <= now and r.ts >= since - 1]
        if rule.evaluate(visible, now):
            return now, rule.moment(visible, since, now)
        now += POLL
    raise AssertionError(f"{rule.describe()} never held")


CONFIGS = [(users, fault) for users in (4, 20)
           for fault in (Fault("errors", 0.5), Fault("errors", 0.1), Fault("latency"))]


def rules(fault: Fault) -> tuple[Trigger, Trigger]:
    if fault.kind == "errors":
        alarm: Trigger = ErrorRateAbove(threshold=0.05, for_seconds=0, window_seconds=2)
        healthy: Trigger = ErrorRateAtMost(threshold=0.01, for_seconds=3, window_seconds=2)
    else:
        alarm = LatencyAbove(above_ms=200, for_seconds=0, window_seconds=2)
        healthy = LatencyBelow(p=95, below_ms=200, for_seconds=3, window_seconds=2)
    return alarm, AllOf((healthy, VersionShare(version="1.0.0", at_least=1.0, for_seconds=3, window_seconds=2)))


def first_bad_sent(records: list[RequestRecord], fault: Fault) -> float:
    """The earliest evidence the traffic holds: the first affected request sent after the fault."""
    return min(r.sent for r in records if r.sent >= FAULT_ON and (r.status >= 500 or r.latency_ms > 200))


@pytest.mark.parametrize("users, fault", CONFIGS, ids=[f"{u}users-{f.kind}-{f.rate:g}" for u, f in CONFIGS])
def test_detection_and_recovery_are_within_half_a_second_of_the_truth_worst_case(users, fault):
    alarm, recovery = rules(fault)
    detect_errors, recover_errors, added = [], [], []
    for seed in range(12):
        records = stream(users, fault, seed, until=FAULT_OFF + 15)
        anchor = T0 + random.Random(seed).random() * POLL
        _, detected = polled(alarm, records, T0, anchor)
        _, recovered = polled(recovery, records, FAULT_OFF - 1.0, FAULT_OFF + 0.05)  # "done" came early
        detect_errors.append(detected - FAULT_ON)
        recover_errors.append(recovered - FAULT_OFF)
        added.append(detected - first_bad_sent(records, fault))
    # the rules add nothing to what the traffic shows: detection is the first affected request
    assert max(map(abs, added)) <= 0.01, added
    assert max(map(abs, recover_errors)) <= 0.5, recover_errors
    if users * (fault.rate if fault.kind == "errors" else 1) >= 2:
        # with at least 2 affected requests per 100 ms burst the traffic itself shows the fault
        # within 0.5 s; at 4 users and 10 % errors the first failed request alone can come later
        assert max(map(abs, detect_errors)) <= 0.5, detect_errors


def test_an_alarm_held_for_a_while_fires_that_long_after_the_stretch_began():
    rule = ErrorRateAbove(threshold=0.05, for_seconds=1.5, window_seconds=2)
    records = stream(4, Fault("errors", 0.1), 7, until=FAULT_OFF)
    fired, detected = polled(rule, records, T0, T0)
    assert abs(detected - (FAULT_ON + 1.5)) <= 0.5
    assert fired - detected > 0.5  # the poll alone would have been late: the window was diluted


def test_what_a_poll_notices_is_late_at_low_error_rates():
    """Without back-dating, the moment a poll sees the rule hold is far from the truth (the
    window is diluted by the healthy requests before the fault; recovery waits out the hold)."""
    alarm, recovery = rules(Fault("errors", 0.1))
    records = stream(4, Fault("errors", 0.1), 3, until=FAULT_OFF + 15)
    fired, _ = polled(alarm, records, T0, T0)
    confirmed, _ = polled(recovery, records, FAULT_OFF, FAULT_OFF)
    assert fired - FAULT_ON > 0.5
    assert confirmed - FAULT_OFF > 2.5


def test_a_straggler_answered_after_the_fix_but_sent_before_does_not_delay_recovery():
    records = stream(4, Fault("latency"), 1, until=FAULT_OFF + 10)
    _, recovery = rules(Fault("latency"))
    _, recovered = polled(recovery, records, FAULT_OFF, FAULT_OFF)
    slow_answered_after = [r for r in records if r.latency_ms > 200 and r.ts > FAULT_OFF]
    assert slow_answered_after  # the stream has them: requests sent before the fix, answered after
    assert abs(recovered - FAULT_OFF) <= 0.15


def test_a_stray_slow_request_before_a_latency_fault_does_not_date_the_alarm_early():
    """One healthy request over the threshold (a scheduling hiccup) 0.3 s before the fault is no
    onset: the stretch starts where the rule holds on the requests from it on."""
    rule = LatencyAbove(p=95, above_ms=20, for_seconds=0, window_seconds=5)
    start = 100.0
    records = [RequestRecord(ts=start + i / 200 + 0.002, method="GET", path="/", status=200, latency_ms=2.0,
                             version="1.0.0") for i in range(-2000, 0)]
    records.append(RequestRecord(ts=start - 0.3 + 0.03, method="GET", path="/", status=200, latency_ms=30.0,
                                 version="1.0.0"))
    records += [RequestRecord(ts=start + i / 200 + 0.4, method="GET", path="/", status=200, latency_ms=400.0,
                              version="2.0.0") for i in range(0, 400)]
    records.sort(key=lambda r: r.ts)
    detected = rule.moment(records, start - 10, start + 2.4)
    assert abs(detected - start) <= 0.01, detected - start
