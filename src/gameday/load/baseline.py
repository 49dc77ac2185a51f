"""A clean baseline before any incident: the healthy service's golden signals, or a stop.

    baseline = capture_baseline(load, seconds=5, timeout=60, version="3.1.0", journal=journal)
    LatencyAbove(p=95, factor=2).with_baseline(baseline)

If any request fails against the healthy service (a 404 on a path the service does not
have, a status the project file did not expect, the team's own check), the load does not
fit the service and every error rate measured later would be wrong: BaselineNotClean
(a ConfigError, exit 2) names how many failed and the top routes with their statuses.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import raise_if_a_part_died
from gameday.load.records import NO_VERSION, RequestRecord
from gameday.load.signals import error_rate, latency, version_share, window

TOP_ROUTES = 3  # failing routes named in the message


class RecordSource(Protocol):
    def records(self, since: float | None = None) -> list[RequestRecord]: ...


class BaselineNotClean(ConfigError):
    """Requests failed (or the wrong release answered) before any fault was injected."""


@dataclass(frozen=True)
class Baseline:
    requests: int
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    versions: dict[str, float]
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        versions = ", ".join(f"{v} {s:.0%}" for v, s in self.versions.items()) or "-"
        return (f"{self.requests} requests in {self.seconds:.1f}s, errors {self.error_rate:.1%}, "
                f"p50 {self.p50_ms:.1f}ms, p95 {self.p95_ms:.1f}ms, p99 {self.p99_ms:.1f}ms, releases: {versions}")

    @classmethod
    def of(cls, records: Sequence[RequestRecord], *, start: float, end: float) -> Baseline:
        """The figures of ``records`` (at least one with a response)."""
        return cls(
            requests=len(records),
            error_rate=error_rate(records) or 0.0,
            p50_ms=latency(records, 50) or 0.0,
            p95_ms=latency(records, 95) or 0.0,
            p99_ms=latency(records, 99) or 0.0,
            versions=version_share(records),
            start=start,
            end=end,
        )


def failing_routes(records: Sequence[RequestRecord], top: int = TOP_ROUTES) -> str:
    """``GET /cart/items 404 x61, POST /cart no response x3``: the most frequent failures."""
    counts = Counter((r.method, r.path, r.status) for r in records if r.failed)
    parts = []
    for (method, path, status), count in counts.most_common(top):
        part = f"{method} {path} {status or 'no response'} x{count}"
        if 0 < status < 400:  # failed by the workload's own check: its reason says why
            reason = next((r.error for r in records if r.failed and (r.method, r.path, r.status) ==
                           (method, path, status) and r.error), None)
            part += f" ({reason[:80]})" if reason else ""
        parts.append(part)
    if len(counts) > top:
        parts.append(f"{len(counts) - top} more")
    return ", ".join(parts)


def _release_expected(load: object) -> str:
    release = getattr(getattr(load, "profile", None), "release", None)
    return release.describe() if release is not None else "no release reader: the project file has no release:"


def check_clean(records: Sequence[RequestRecord], *, version: str | None = None, load: object = None) -> None:
    """Raise BaselineNotClean when any request in ``records`` failed, or ``version`` did not
    serve all of them."""
    failed = sum(1 for r in records if r.failed)
    if failed:
        raise BaselineNotClean(
            f"baseline is not clean: {failed} of {len(records)} requests failed before any fault "
            f"({failing_routes(records)}); the load profile does not fit the service",
            fix="fix the load's paths or expected statuses in the project file, or the service",
        )
    if version is None:
        return
    shares = version_share(records)
    if shares.get(version, 0.0) >= 1.0:
        return
    if set(shares) == {NO_VERSION}:
        raise BaselineNotClean(
            f"baseline is not clean: no release was read from the {len(records)} responses "
            f"(expected {_release_expected(load)} naming {version})",
            fix="fix release: in the project file (the header or JSON field naming the release), or make the "
                "service send it",
        )
    served = ", ".join(f"{v} {s:.1%}" for v, s in sorted(shares.items(), key=lambda item: -item[1]))
    raise BaselineNotClean(
        f"baseline is not clean: release {version} served {shares.get(version, 0.0):.1%} of {len(records)} "
        f"requests, not 100% ({served})",
        fix=f"deploy {version} alone before the incident, or fix which release the baseline expects",
    )


def capture_baseline(
    load: RecordSource,
    *,
    seconds: float,
    timeout: float,
    version: str | None = None,
    journal: Journal | None = None,
) -> Baseline:
    """Wait (up to ``timeout`` s) until traffic flows, then observe ``seconds`` of it.

    Raises BaselineNotClean if any request in that window failed, or when ``version`` is
    given and it did not serve 100 % of them; EnvironmentNotReady if no traffic flows.
    """
    if seconds <= 0 or timeout <= 0:
        raise ConfigError(f"baseline seconds={seconds:g} and timeout={timeout:g} must be > 0",
                          fix="e.g. a baseline over 5 seconds")
    deadline = time.monotonic() + timeout
    while not load.records(since=time.time() - 1.0):
        raise_if_a_part_died("traffic for the baseline")
        _check_running(load)
        if time.monotonic() >= deadline:
            raise EnvironmentNotReady(f"no traffic flowed within {timeout:g}s to take a baseline from",
                                      fix="check the load generator reaches the service")
        time.sleep(0.05)
    start = time.time()
    end = start + seconds
    while (left := end - time.time()) > 0:
        raise_if_a_part_died("the baseline window")
        _check_running(load)
        time.sleep(min(left, 0.1))
    sample = window(load.records(since=start), start, end)
    if not sample:
        raise BaselineNotClean(f"baseline is not clean: no request completed in the {seconds:g}s baseline window",
                               fix="give the load more users or rate, or take a longer baseline")
    baseline = Baseline.of(sample, start=start, end=end)
    try:
        check_clean(sample, version=version, load=load)
    except BaselineNotClean as exc:
        _journal(journal, baseline, version, problem=exc.message)
        raise
    _journal(journal, baseline, version)
    return baseline


def _check_running(load: object) -> None:
    if not getattr(load, "running", True):
        raise EnvironmentNotReady("the load generator stopped before the baseline was taken",
                                  fix="give the load generator a max_seconds longer than the scenario")


def _journal(journal: Journal | None, baseline: Baseline, version: str | None, problem: str | None = None) -> None:
    if journal is None:
        return
    message = f"{problem} [{baseline.summary()}]" if problem else f"baseline clean: {baseline.summary()}"
    journal.event("baseline", message, **baseline.to_dict(),
                  expected_version=version, clean=problem is None)
    journal.measure("baseline p95 latency", baseline.p95_ms, "ms")
    journal.measure("baseline p99 latency", baseline.p99_ms, "ms")
    journal.measure("baseline error rate", baseline.error_rate * 100, "%", target=0.0)
