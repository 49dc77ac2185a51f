"""Golden signals on synthetic records: exact answers."""

from __future__ import annotations

import pytest

from gameday.load.records import RequestRecord
from gameday.load.signals import (
    error_rate,
    golden_signals,
    last_versions,
    latency,
    percentile,
    version_share,
    window,
)


def rec(ts: float, status: int = 200, latency_ms: float = 10.0, version: str = "1.0.0") -> RequestRecord:
    return RequestRecord(ts=ts, method="GET", path="/api/orders", status=status, latency_ms=latency_ms,
                         version=version if status else "none")


def test_window_is_half_open_on_the_left() -> None:
    records = [rec(t) for t in range(10)]
    assert [r.ts for r in window(records, 3, 6)] == [4, 5, 6]
    assert window(records, 20, 30) == []


def test_percentile_interpolates_like_numpy() -> None:
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert percentile(values, 50) == 5.5
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 10
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_error_rate_counts_5xx_and_connection_errors_not_4xx() -> None:
    records = [rec(1, 200), rec(2, 404), rec(3, 500), rec(4, 0), rec(5, 503), rec(6, 201), rec(7, 400), rec(8, 200)]
    assert error_rate(records) == 3 / 8
    assert error_rate([]) is None


def test_latency_ignores_requests_without_response() -> None:
    records = [rec(1, latency_ms=100), rec(2, latency_ms=300), rec(3, status=0, latency_ms=0.1)]
    assert latency(records, 50) == 200


def test_version_share_and_last_versions() -> None:
    records = [rec(1, version="1.0.0"), rec(2, version="2.0.0"), rec(3, version="2.0.0"), rec(4, status=0)]
    assert version_share(records) == {"1.0.0": 0.25, "2.0.0": 0.5, "none": 0.25}
    assert last_versions(records[:3], 2) == {"2.0.0": 1.0}
    assert version_share([]) == {}


def test_golden_signals_over_a_sliding_window() -> None:
    # 20 s of traffic at 2 req/s: v1 healthy and fast, then from t=10 v2 failing half and slow.
    records = []
    for i in range(40):
        ts = i / 2
        if ts < 10:
            records.append(rec(ts, 200, 10.0, "1.0.0"))
        else:
            records.append(rec(ts, 500 if i % 2 else 200, 400.0, "2.0.0"))
    before = golden_signals(records, now=9.9, window_seconds=5)
    after = golden_signals(records, now=19.9, window_seconds=5)
    assert (before.requests, before.rate_per_s, before.error_rate, before.p95_ms) == (10, 2.0, 0.0, 10.0)
    assert before.versions == {"1.0.0": 1.0}
    assert (after.requests, after.error_rate, after.p50_ms, after.versions) == (10, 0.5, 400.0, {"2.0.0": 1.0})
    assert "errors 50.0%" in after.summary()
