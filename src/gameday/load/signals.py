"""Golden signals over a sliding window of request records, as pure functions.

Every function takes records sorted by ``ts`` (as ``LoadGenerator.records()`` returns
them) and computes from them alone, so a signal can be recomputed later from the saved
records and tests feed synthetic records with exact expected answers.

    >>> recs = [RequestRecord(ts=t, method="GET", path="/", status=200, latency_ms=10.0, version="1.0.0")
    ...         for t in range(10)]
    >>> golden_signals(recs, now=9.0, window_seconds=5).rate_per_s
    1.0
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gameday.load.records import RequestRecord


def window(records: Sequence[RequestRecord], start: float, end: float) -> Sequence[RequestRecord]:
    """The records with ``start < ts <= end`` (records sorted by ts)."""
    lo = bisect_right(records, start, key=lambda r: r.ts)
    hi = bisect_right(records, end, key=lambda r: r.ts)
    return records[lo:hi]


def errors_by_endpoint(records: Sequence[RequestRecord], edges: Sequence[tuple[str, float]],
                       end: float) -> list[dict[str, Any]]:
    """Per endpoint ("METHOD route") and per phase (``edges``: the name and start of each, in order,
    the last ending at ``end``): requests made and the share that failed."""
    by_endpoint: dict[str, list[RequestRecord]] = {}
    for record in records:
        by_endpoint.setdefault(f"{record.method} {record.path}", []).append(record)
    rows = []
    for endpoint, mine in sorted(by_endpoint.items()):
        phases = {}
        for i, (name, start) in enumerate(edges):
            stop = edges[i + 1][1] if i + 1 < len(edges) else end
            inside = window(mine, start, stop)
            phases[name] = {"requests": len(inside), "error_rate": error_rate(inside)}
        rows.append({"endpoint": endpoint, "phases": phases})
    return rows


def request_rate(records: Sequence[RequestRecord], seconds: float) -> float:
    """Requests per second over a window of ``seconds``."""
    return len(records) / seconds if seconds > 0 else 0.0


def error_rate(records: Sequence[RequestRecord]) -> float | None:
    """Share of requests that failed (RequestRecord.failed); None when there are none."""
    if not records:
        return None
    return sum(1 for r in records if r.failed) / len(records)


def percentile(values: Iterable[float], p: float) -> float | None:
    """The p-th percentile with linear interpolation between ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside 0..100")
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency(records: Sequence[RequestRecord], p: float) -> float | None:
    """p-th percentile latency in ms of the requests that got a response.

    Connection errors are left out: their "latency" is how fast a refusal came back,
    which would make an outage look fast.  They count in error_rate instead.
    """
    return percentile((r.latency_ms for r in records if r.status), p)


def version_share(records: Sequence[RequestRecord]) -> dict[str, float]:
    """Share of requests served by each version (``none``: no response or no header)."""
    if not records:
        return {}
    counts = Counter(r.version for r in records)
    return {version: count / len(records) for version, count in sorted(counts.items())}


def last_versions(records: Sequence[RequestRecord], n: int) -> dict[str, float]:
    """Version share of the last ``n`` requests: the proof of which version serves now."""
    return version_share(records[-n:] if n > 0 else [])


@dataclass(frozen=True)
class GoldenSignals:
    start: float
    end: float
    requests: int
    rate_per_s: float
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    versions: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}ms"

        errors = "-" if self.error_rate is None else f"{self.error_rate:.1%}"
        versions = ", ".join(f"{v} {s:.0%}" for v, s in self.versions.items()) or "-"
        return (f"{self.requests} req ({self.rate_per_s:.1f}/s), errors {errors}, p50 {ms(self.p50_ms)}, "
                f"p95 {ms(self.p95_ms)}, p99 {ms(self.p99_ms)}, versions: {versions}")


def golden_signals(records: Sequence[RequestRecord], *, now: float, window_seconds: float) -> GoldenSignals:
    """Rate, errors, latency percentiles and version shares over ``(now - window, now]``."""
    sample = window(records, now - window_seconds, now)
    return GoldenSignals(
        start=now - window_seconds,
        end=now,
        requests=len(sample),
        rate_per_s=request_rate(sample, window_seconds),
        error_rate=error_rate(sample),
        p50_ms=latency(sample, 50),
        p95_ms=latency(sample, 95),
        p99_ms=latency(sample, 99),
        versions=version_share(sample),
    )


def signal_series(records: Sequence[RequestRecord], *, start: float, end: float,
                  step: float = 1.0) -> list[dict[str, object]]:
    """Golden signals per ``step`` seconds from ``start`` to ``end``, for timelines in reports.

    Each point: ``t`` (seconds after ``start``, bucket end), requests, error_rate, p95_ms
    and versions (share per version); buckets without requests carry None for the rates.
    """
    if step <= 0 or end <= start:
        return []
    points: list[dict[str, object]] = []
    buckets = math.ceil((end - start) / step)
    for i in range(buckets):
        lo, hi = start + i * step, min(end, start + (i + 1) * step)
        sample = window(records, lo, hi)
        points.append({
            "t": round(hi - start, 3),
            "requests": len(sample),
            "error_rate": error_rate(sample),
            "p95_ms": latency(sample, 95),
            "versions": version_share(sample),
        })
    return points
