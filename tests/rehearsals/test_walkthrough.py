"""README's "Rehearse your own service" walkthrough, on a new team's repository.

A service gameday has never seen (not the demo, not the example): a Python stdlib HTTP
service "checkout-api" that names its release in an ``X-App-Version`` header, with its
own manifests.  The walkthrough's commands only: ``gameday init``, ``gameday run`` on the
embedded cluster, then the same features unchanged against a separately started
cluster through ``GAMEDAY_CLUSTER=kubeconfig``, as a team points gameday at staging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gameday.cluster.build import is_built

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not is_built(), reason="Kubernetes binaries not built: run `gameday cluster build`"),
]

def test_a_new_team_rehearses_its_own_service_through_the_walkthrough(team_repo: Path, gameday, phases):
    made = gameday("init", "--manifests", "k8s", "--command", "{python} {dir}/app.py", "--version-env", "APP_VERSION",
                   "--release-header", "X-App-Version", "--request", "/api/cart", cwd=team_repo)
    assert made.returncode == 0, made.stdout + made.stderr
    for written in ("gameday.yaml", "features/rollback.feature", "tests/test_gameday_features.py", "conftest.py"):
        assert (team_repo / written).is_file(), made.stdout

    # 1. the embedded cluster (the default)
    done = gameday("run", "--reports", "r1", cwd=team_repo)
    status, measured = phases(team_repo / "r1")
    assert done.returncode == 0 and status == "passed", done.stdout[-3000:] + done.stderr[-2000:]
    for phase in ("detect", "decide", "act", "recover"):
        assert measured[f"time to {phase}"] >= 0
    assert measured["time to detect"] >= 3  # the alarm needs 3 s of errors
    assert sum(measured[f"time to {p}"] for p in ("detect", "decide", "act", "recover")) == pytest.approx(
        measured["time to rollback (total)"], abs=0.01)

    # 2. unchanged, against a cluster started separately, reached through its kubeconfig
    name = f"walk-{uuid.uuid4().hex[:6]}"
    up = gameday("cluster", "--name", name, "up", "--nodes", "2", cwd=team_repo, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        kubeconfig = up.stdout.strip().splitlines()[-1]
        done = gameday("run", "--reports", "r2", cwd=team_repo,
                       env={"GAMEDAY_CLUSTER": "kubeconfig", "GAMEDAY_KUBECONFIG": kubeconfig})
        status, measured = phases(team_repo / "r2")
        assert done.returncode == 0 and status == "passed", done.stdout[-3000:] + done.stderr[-2000:]
        assert measured["time to detect"] >= 3 and measured["time to act"] > 0
        journal = json.loads(next((team_repo / "r2").glob("*/journal.json")).read_text())
        assert journal["environment"]["providers"]["cluster"] == {"name": "kubeconfig", "why": "explicit"}
    finally:
        gameday("cluster", "--name", name, "down", cwd=team_repo, timeout=120)


def test_installing_gameday_leaves_other_pytest_runs_untouched(tmp_path: Path):
    # a repository that does not use gameday: no gameday fixtures, no reports
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")

    def pytest_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    fixtures = pytest_run("--fixtures").stdout
    assert pytest_run("-q").returncode == 0
    assert not any(f"\n{name}" in fixtures for name in ("journal", "database", "kubernetes_rehearsal"))
    assert not (tmp_path / "reports").exists()
    # opting in is one flag away, and brings the library
    opted = pytest_run("--fixtures", "--gameday").stdout
    assert "\njournal" in opted and "\nkubernetes_rehearsal" in opted
