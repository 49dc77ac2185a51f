"""One endpoint's records, and errors per endpoint and phase (a release that migrated the database)."""

from __future__ import annotations

import pytest

from gameday.errors import ConfigError
from gameday.load import EndpointRecords, ErrorRateAbove, ErrorRateAtMost
from gameday.load.records import RequestRecord
from gameday.load.signals import errors_by_endpoint


class Source:
    def __init__(self, records: list[RequestRecord]) -> None:
        self._records = records
        self.running = True

    def records(self, since: float | None = None) -> list[RequestRecord]:
        return [r for r in self._records if since is None or r.ts >= since]


def traffic() -> list[RequestRecord]:
    """Writes fail from t=10 on (the previous release on the new schema); reads never do."""
    out = []
    for i in range(200):
        t = i * 0.1
        out.append(RequestRecord(ts=t, method="GET", path="/api/orders", status=200, latency_ms=2))
        out.append(RequestRecord(ts=t + 0.05, method="POST", path="/api/orders", status=500 if t >= 10 else 201,
                                 latency_ms=2))
    return out


def test_one_endpoint_is_judged_alone():
    source = Source(traffic())
    writes, reads = EndpointRecords.parse(source, "post /api/orders"), EndpointRecords.parse(source, "GET /api/orders")
    assert str(writes) == "POST /api/orders" and len(writes.records()) == 200
    # the whole traffic fails half its requests after t=10; the writes alone, all of them
    assert ErrorRateAbove(threshold=0.9, for_seconds=3).evaluate(writes.records(), 19.9)
    assert not ErrorRateAbove(threshold=0.9, for_seconds=3).evaluate(source.records(), 19.9)
    assert ErrorRateAtMost(threshold=0.01, for_seconds=3).evaluate(reads.records(), 19.9)
    assert writes.running


def test_an_endpoint_the_load_never_reached_is_refused_naming_those_it_did():
    with pytest.raises(ConfigError) as error:
        EndpointRecords.parse(Source(traffic()), "DELETE /api/orders")
    assert "GET /api/orders, POST /api/orders" in error.value.message and "METHOD and route" in error.value.fix


def test_errors_per_endpoint_and_phase():
    rows = errors_by_endpoint(traffic(), [("before", 0.0), ("incident", 10.0), ("after", 14.98)], 20.0)
    by = {r["endpoint"]: r["phases"] for r in rows}
    assert by["POST /api/orders"]["before"]["error_rate"] == 0
    assert by["POST /api/orders"]["incident"] == {"requests": 50, "error_rate": 1.0}
    assert by["GET /api/orders"]["after"]["error_rate"] == 0 and by["GET /api/orders"]["after"]["requests"] == 50
