"""A team's own service through the generic step library: a good build broken by the harness
(pod annotation), latency and error-rate checks against the baseline, and a load that does
not fit the service stopping the run before any incident."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gameday.cluster.build import is_built

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not is_built(), reason="Kubernetes binaries not built: run `gameday cluster build`"),
]

PROJECT = """\
namespace: checkout
services:
  checkout-api:
    manifests: k8s/
    container: app
    endpoints: {health: /health, version: /version}
    release: {header: X-App-Version}
    load:
      users: 4
      requests:
        - {path: /api/cart, weight: 3}
        - {path: /version, weight: 1}
images:
  - repository: ghcr.io/acme/checkout-api
    command: ["{python}", "{dir}/app.py"]
    port: 9000
    tags: {"3.1.0": {env: {APP_VERSION: "3.1.0"}}}
"""

SLOW_BUILD = """\
Feature: A good build made slow by the harness
  Scenario: The slow release is undone and latency comes back to baseline
    Given the service "checkout-api" runs release "3.1.0" with 2 replicas
    And steady traffic on service "checkout-api"
    And a baseline of the golden signals is captured over 3 seconds
    When release "3.1.0" of deployment "checkout-api" is rolled out with the fault "latency-ms=300"
    Then the alarm for p95 latency above 2 × baseline for 2 seconds fires within 60 seconds
    When the on-call engineer undoes the rollout of deployment "checkout-api"
    Then the rollout of deployment "checkout-api" completes within 60 seconds
    And all replicas of deployment "checkout-api" are ready
    And p95 latency is back to baseline within 30 seconds
    And p99 latency stays below 250 ms for 3 seconds
    And the error rate stays below 0.1% for 3 seconds
    # a stdlib server drops the requests in flight when its pod is killed, so not 100 % of the last 10 s
    And release "3.1.0" serves at least 95% of traffic
    And the version endpoint of service "checkout-api" answers 200
    And the version endpoint of service "checkout-api" names release "3.1.0"
"""


def test_a_good_build_slowed_by_a_pod_annotation_is_caught_and_undone(team_repo: Path, gameday, phases):
    (team_repo / "gameday.yaml").write_text(PROJECT)
    (team_repo / "features").mkdir()
    (team_repo / "features" / "slow.feature").write_text(SLOW_BUILD)
    done = gameday("run", "--reports", "r", cwd=team_repo)
    status, measured = phases(team_repo / "r")
    assert done.returncode == 0 and status == "passed", done.stdout[-3000:] + done.stderr[-2000:]
    # the fault added 300 ms to every request the slow pods served: detected, then gone
    assert measured["time to detect"] >= 2
    assert measured["p95 latency"] < 250 and measured["baseline p95 latency"] < 100
    assert measured["share of traffic on 3.1.0"] >= 95
    journal = json.loads(next((team_repo / "r").glob("*/journal.json")).read_text())
    events = [e for s in journal["scenarios"] for st in s["steps"] for e in st["events"]]
    deploy = next(e for e in events if e["kind"] == "bad-deploy")
    assert "latency-ms=300" in deploy["message"]


def test_a_load_that_does_not_fit_the_service_stops_before_the_incident(team_repo: Path, gameday):
    (team_repo / "gameday.yaml").write_text(PROJECT.replace("path: /api/cart", "path: /api/basket"))
    (team_repo / "features").mkdir()
    (team_repo / "features" / "slow.feature").write_text(SLOW_BUILD)
    done = gameday("run", "--reports", "r", cwd=team_repo)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out[-3000:]
    assert "baseline is not clean" in out and "GET /api/basket 404" in out
    journal = json.loads(next((team_repo / "r").glob("*/journal.json")).read_text())
    events = [e["kind"] for s in journal["scenarios"] for st in s["steps"] for e in st["events"]]
    assert "bad-deploy" not in events  # nothing was broken: the run stopped at the baseline
