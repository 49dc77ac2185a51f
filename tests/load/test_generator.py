"""Real locust against real demo processes: every request recorded, signals and triggers on it.

The demo's load is its own locustfile (gameday/demo/locustfile.py), run the way any team's
is, with the release read from the header the demo's project file names.
Each load run is bounded by max_seconds <= 10 and stopped as soon as the test has seen enough.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import gameday.demo
from gameday.demo.process import DemoProcess
from gameday.errors import ConfigError
from gameday.lifecycle import free_port
from gameday.load import (
    AllOf,
    ErrorRateAbove,
    ErrorRateAtMost,
    LoadGenerator,
    LoadProfile,
    ReleaseReader,
    RequestSpec,
    VersionShare,
    golden_signals,
)
from gameday.load.signals import version_share

DEMO_LOAD = Path(gameday.demo.__file__).with_name("locustfile.py")


def demo_load(users: int) -> LoadProfile:
    return LoadProfile(users=users, locustfile=DEMO_LOAD, release=ReleaseReader(header=gameday.demo.HEADER))


def served_api_requests(demo: DemoProcess) -> int:
    """What the service itself counted on /api paths (from its Prometheus metrics)."""
    text = demo.request("GET", "/metrics").body.decode()
    return sum(int(m.group(1)) for m in re.finditer(r'^demo_requests_total\{path="/api/[^\n]*\} (\d+)$', text, re.M))


def test_two_versions_every_request_recorded_with_its_version(tmp_path: Path) -> None:
    with DemoProcess(version="1.0.0") as good, \
            DemoProcess(version="2.0.0-errors", fault="error-rate=0.5") as bad:
        with LoadGenerator(good.url, profile=demo_load(3), max_seconds=8, workdir=tmp_path / "good") as load_good, \
                LoadGenerator(bad.url, profile=demo_load(3), max_seconds=8, workdir=tmp_path / "bad") as load_bad:
            time.sleep(3)
            live = load_bad.signals(window_seconds=2)
        now = time.time()
        served_good, served_bad = served_api_requests(good), served_api_requests(bad)
    good_records, bad_records = load_good.records(), load_bad.records()
    assert len(good_records) >= 30 and len(bad_records) >= 30

    # Every request the service answered is in the records (a request cut off by the stop may not be).
    assert 0 <= served_good - len(good_records) <= 3
    assert 0 <= served_bad - len(bad_records) <= 3
    assert version_share(good_records) == {"1.0.0": 1.0}
    assert version_share(bad_records) == {"2.0.0-errors": 1.0}
    # Locust picks the 10 % create at random: over both runs (about 240 requests) it is missed once in 1e11
    assert {r.path for r in good_records + bad_records} == {"/api/orders", "/api/orders/{id}"}
    assert {r.method for r in good_records + bad_records} == {"GET", "POST"}
    assert all(r.latency_ms > 0 and r.ts <= now for r in good_records)

    assert live.requests > 10 and live.versions == {"2.0.0-errors": 1.0}
    good_signals = golden_signals(good_records, now=now, window_seconds=10)
    bad_signals = golden_signals(bad_records, now=now, window_seconds=10)
    # The fault fails each request at random, so the bounds below leave room for chance: about 90
    # requests at 50 % fall outside 20-80 % once in 5e8 runs, and 2 s windows of about 60 requests
    # show 10 % or fewer errors once in 2e10 (1 s windows of 30 at 20 %: once in 700, seen).
    assert good_signals.error_rate == 0.0
    assert 0.2 <= bad_signals.error_rate <= 0.8  # type: ignore[operator]
    assert good_signals.p50_ms is not None and good_signals.p50_ms < 200

    rule = ErrorRateAbove(threshold=0.1, for_seconds=1, window_seconds=2)
    last = bad_records[-1].ts
    assert rule.evaluate(bad_records, now=last)
    assert not rule.evaluate(good_records, now=good_records[-1].ts)


def test_triggers_time_a_bad_deploy_and_its_rollback(tmp_path: Path) -> None:
    stable = DemoProcess(version="1.0.0").start()
    address = {"host": stable.host, "port": stable.port}
    with LoadGenerator(stable.url, profile=demo_load(4), max_seconds=10, workdir=tmp_path) as load:
        VersionShare("1.0.0", window_seconds=0.5).wait(load, timeout=5)

        deployed_at = time.time()  # the "bad deploy": the process on the address is replaced
        stable.stop()
        broken = DemoProcess(version="2.0.0-errors", fault="error-rate=1.0", **address).start()
        detected_at = ErrorRateAbove(threshold=0.5, for_seconds=1.0, window_seconds=0.5).wait(
            load, timeout=6, since=deployed_at)

        rolled_back_at = time.time()
        broken.stop()
        restored = DemoProcess(version="1.0.0", **address).start()
        recovered = AllOf((ErrorRateAtMost(threshold=0.0, window_seconds=0.5),
                           VersionShare("1.0.0", for_seconds=0.5, window_seconds=0.5)))
        recovered_at = recovered.wait(load, timeout=6, since=rolled_back_at)
    restored.stop()

    # The rule needs 1 s of sustained errors after the deploy; recovery comes after the rollback.
    assert deployed_at + 1.0 <= detected_at < rolled_back_at < recovered_at
    served = [r.version for r in load.records() if r.status]
    order = [v for i, v in enumerate(served) if i == 0 or served[i - 1] != v]
    assert order == ["1.0.0", "2.0.0-errors", "1.0.0"]


def test_connection_errors_are_records_and_the_run_ends_by_itself(tmp_path: Path) -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    profile = LoadProfile(users=2, requests=(RequestSpec(path="/health"),), release=ReleaseReader(json="version"))
    load = LoadGenerator(nothing, profile=profile, max_seconds=3, workdir=tmp_path).start()
    try:
        ErrorRateAbove(threshold=0.9, window_seconds=0.5).wait(load, timeout=5)
        assert load.wait(timeout=10) == 0  # --run-time ends locust on its own
        assert not load.running
    finally:
        load.stop()
        load.stop()  # idempotent
    records = load.records()
    assert records and all(r.status == 0 and r.version == "none" and r.failed for r in records)
    assert "Refused" in (records[0].error or "")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"url": "http://10.0.0.8:80"}, "127.0.0.0/8"),
        ({"url": "ftp://127.0.0.1:21"}, "not an http URL"),
        ({"url": "http://[::1]:80"}, "127.0.0.0/8"),
        ({"url": "http://127.0.0.1:1", "max_seconds": 0}, "max_seconds=0"),
        ({"url": "http://127.0.0.1:1", "spawn_rate": 0}, "spawn_rate=0"),
        ({"url": "http://127.0.0.1:1", "profile": None}, "is not a LoadProfile"),
    ],
)
def test_bad_load_settings_are_refused_before_starting(kwargs: dict[str, object], words: str) -> None:
    kwargs = {"profile": LoadProfile(requests=(RequestSpec(path="/"),)), **kwargs}
    with pytest.raises(ConfigError, match=re.escape(words)):
        LoadGenerator(**kwargs)  # type: ignore[arg-type]
