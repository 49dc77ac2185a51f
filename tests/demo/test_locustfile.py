"""The demo's own load: its locustfile, run as the demo project file says, like any team's."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

import gameday.demo
from gameday import project
from gameday.demo.process import DemoProcess
from gameday.load import BaselineNotClean, LoadGenerator, LoadProfile, capture_baseline
from gameday.load.generator import check_locustfile

LOCUSTFILE = Path(gameday.demo.__file__).with_name("locustfile.py")


def demo_profile() -> LoadProfile:
    return project.parse(project.demo_project_file()).services["demo"].load


def test_the_project_file_runs_the_demo_locustfile_with_the_release_header() -> None:
    profile = demo_profile()
    assert profile.locustfile == LOCUSTFILE.resolve() and not profile.requests
    assert profile.release is not None and profile.release.header == gameday.demo.HEADER
    assert check_locustfile(LOCUSTFILE) == ["OrdersUser"]


def test_orders_workload_is_clean_on_a_healthy_demo_and_mixes_60_30_10(tmp_path: Path) -> None:
    with DemoProcess(version="1.0.0") as demo, \
            LoadGenerator(demo.url, profile=demo_profile(), max_seconds=10, workdir=tmp_path) as load:
        baseline = capture_baseline(load, seconds=2, timeout=10, version="1.0.0")
        deadline = time.monotonic() + 7
        while len(load.records()) < 250 and time.monotonic() < deadline:
            time.sleep(0.1)
        load.stop()
    assert baseline.error_rate == 0.0 and baseline.versions == {"1.0.0": 1.0}
    records = load.records()
    assert len(records) >= 200
    # Locust picks each task at random: with 200 requests or more a share strays 0.2 from its weight
    # once in 2e8 runs, and an even mix (a third each) still fails.
    mix = Counter((r.method, r.path) for r in records)
    for route, share in ((("GET", "/api/orders"), 0.6), (("GET", "/api/orders/{id}"), 0.3),
                         (("POST", "/api/orders"), 0.1)):
        assert abs(mix[route] / len(records) - share) <= 0.2, mix
    assert not any(r.failed for r in records)


def test_a_broken_release_is_no_baseline(tmp_path: Path) -> None:
    with DemoProcess(version="2.0.0-errors", fault="error-rate=0.5") as demo, \
            LoadGenerator(demo.url, profile=demo_profile(), max_seconds=6, workdir=tmp_path) as load, \
            pytest.raises(BaselineNotClean, match=r"requests failed before any fault \(.*/api/orders.* 500 x"):
        capture_baseline(load, seconds=1, timeout=5)
