"""A clean baseline before any incident, against a real service under real locust load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.journal import Journal
from gameday.load import (
    Baseline,
    BaselineNotClean,
    LoadGenerator,
    LoadProfile,
    ReleaseReader,
    RequestSpec,
    capture_baseline,
)
from gameday.load.baseline import check_clean, failing_routes
from gameday.load.records import RequestRecord

if TYPE_CHECKING:
    from conftest import CheckoutApi

CART = (RequestSpec(path="/cart", weight=3, expect=(200,)),
        RequestSpec(method="POST", path="/cart", body={"sku": "A1"}, expect=(201,)))


def test_a_healthy_service_gives_a_clean_baseline_and_the_wrong_release_does_not(
        checkout_api: CheckoutApi, tmp_path: Path) -> None:
    profile = LoadProfile(users=2, rate=20, requests=CART, release=ReleaseReader(header="X-App-Version"))
    journal = Journal()
    with LoadGenerator(checkout_api.url, profile=profile, max_seconds=8, workdir=tmp_path) as load:
        baseline = capture_baseline(load, seconds=1.5, timeout=5, version="3.1.0", journal=journal)
        with pytest.raises(BaselineNotClean) as caught:
            capture_baseline(load, seconds=0.5, timeout=5, version="3.0.9")
    assert isinstance(baseline, Baseline)
    assert 30 <= baseline.requests <= 90  # 2 users x 20/s x 1.5 s
    assert baseline.error_rate == 0.0 and baseline.versions == {"3.1.0": 1.0}
    assert 0 < baseline.p50_ms <= baseline.p95_ms <= baseline.p99_ms < 500
    assert baseline.end - baseline.start == pytest.approx(1.5, abs=0.15)
    assert all(baseline.start < r.ts <= baseline.end for r in load.records(since=baseline.start)[:baseline.requests])

    message = caught.value.message
    assert message.startswith("baseline is not clean: release 3.0.9 served 0.0% of ")
    assert message.endswith("requests, not 100% (3.1.0 100.0%)")
    assert isinstance(caught.value, ConfigError) and caught.value.exit_code == 2

    event = next(e for e in journal.loose.events if e.kind == "baseline")
    assert event.data["requests"] == baseline.requests and event.data["clean"] is True
    assert {m.name: m.unit for m in journal.loose.measurements} == {
        "baseline p95 latency": "ms", "baseline p99 latency": "ms", "baseline error rate": "%"}


def test_a_route_the_service_does_not_have_stops_the_run(checkout_api: CheckoutApi, tmp_path: Path) -> None:
    checkout_api.missing.add("/cart/items")
    profile = LoadProfile(users=2, rate=20, requests=(*CART, RequestSpec(path="/cart/items", weight=2)))
    with LoadGenerator(checkout_api.url, profile=profile, max_seconds=6, workdir=tmp_path) as load, \
            pytest.raises(BaselineNotClean) as caught:
        capture_baseline(load, seconds=1, timeout=5)
    line = caught.value.one_line()
    assert line.startswith("baseline is not clean: ")
    assert "requests failed before any fault (GET /cart/items 404 x" in line
    assert line.endswith("); the load profile does not fit the service (fix the load's paths or expected "
                         "statuses in the project file, or the service)")


def rec(path: str, status: int, *, failed: bool | None = None, version: str = "3.1.0",
        error: str | None = None) -> RequestRecord:
    return RequestRecord(ts=1.0, method="GET", path=path, status=status, latency_ms=2.0,
                         version=version if status else "none", failed=failed, error=error)


def test_failing_routes_name_statuses_counts_and_the_teams_reason() -> None:
    records = ([rec("/a", 404, failed=True)] * 61 + [rec("/b", 0)] * 3 + [rec("/c", 200)] * 400
               + [rec("/d", 200, failed=True, error="CatchResponseError: no items")] * 2
               + [rec("/e", 500)])
    assert failing_routes(records) == ("GET /a 404 x61, GET /b no response x3, "
                                       "GET /d 200 x2 (CatchResponseError: no items), 1 more")
    with pytest.raises(BaselineNotClean, match=r"67 of 467 requests failed before any fault \(GET /a 404 x61"):
        check_clean(records)


def test_no_release_read_names_what_was_expected() -> None:
    class Load:
        profile = LoadProfile(requests=CART, release=ReleaseReader(header="X-Served-By"))

    with pytest.raises(BaselineNotClean) as caught:
        check_clean([rec("/cart", 200, version="none")] * 10, version="3.1.0", load=Load())
    assert caught.value.message == ("baseline is not clean: no release was read from the 10 responses "
                                    "(expected header X-Served-By naming 3.1.0)")
    mixed = [rec("/cart", 200, version="3.1.0")] * 3 + [rec("/cart", 200, version="3.2.0")]
    with pytest.raises(BaselineNotClean, match=r"release 3.1.0 served 75.0% of 4 requests, not 100% "
                                               r"\(3.1.0 75.0%, 3.2.0 25.0%\)"):
        check_clean(mixed, version="3.1.0")
    check_clean(mixed)  # no release expected: any will do


def test_no_traffic_is_not_a_baseline() -> None:
    class Silent:
        running = True

        def records(self, since: float | None = None) -> list[RequestRecord]:
            return []

    with pytest.raises(EnvironmentNotReady, match="no traffic flowed within 0.3s"):
        capture_baseline(Silent(), seconds=1, timeout=0.3)
