"""The shipped Kubernetes game day end to end: real control plane, process kubelet,
service proxy, locust traffic and kubectl, through `gameday run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.cluster.build import is_built

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not is_built(), reason="Kubernetes binaries not built: run `gameday cluster build`"),
]


def run_feature(feature: Path, cwd: Path) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "gameday.cli", "run", str(feature), "--reports", str(cwd / "r")],
                            capture_output=True, text=True, timeout=900, cwd=cwd)
    journals = list((cwd / "r").glob("*/journal.json"))
    assert len(journals) == 1, result.stdout + result.stderr
    return result.returncode, json.loads(journals[0].read_text())


def measurements(journal: dict) -> dict[str, dict]:
    return {m["name"]: m for s in journal["scenarios"] for st in s["steps"] for m in st["measurements"]}


def test_rollout_undo_rehearsal_measures_every_phase(tmp_path):
    code, journal = run_feature(REPO / "features" / "kubernetes_rollback.feature", tmp_path)
    [scenario] = journal["scenarios"]
    assert code == 0, scenario["error"]
    found = measurements(journal)
    assert found["time to decide"]["value"] >= 0  # the feature sets no target for it
    for phase in ("detect", "act", "recover"):
        assert found[f"time to {phase}"]["value"] >= 0 and found[f"time to {phase}"]["passed"] is True
    total = found["time to rollback (total)"]["value"]
    parts = sum(found[f"time to {p}"]["value"] for p in ("detect", "decide", "act", "recover"))
    assert abs(total - parts) < 0.01
    # the alarm needs 3 s of errors, so detection cannot be faster than that
    assert found["time to detect"]["value"] >= 3
    commands = [e["message"] for s in journal["scenarios"] for st in s["steps"] for e in st["events"]
                if e["kind"] == "kubectl"]
    assert "kubectl rollout undo deployment/demo" in commands
    # the traffic the scenario saw is in the journal: errors after the bad deploy, none at the end
    [signals] = [e["data"] for e in scenario["events"] if e["kind"] == "signals"]
    after_deploy = [p for p in signals["series"] if p["t"] > signals["marks"]["t0"] and p["error_rate"] is not None]
    assert max(p["error_rate"] for p in after_deploy) > 0.05
    assert after_deploy[-1]["error_rate"] == 0 and after_deploy[-1]["versions"] == {"1.0.0": 1.0}
    assert "<svg" in (next((tmp_path / "r").glob("*/report.html"))).read_text()


def test_a_rollback_that_does_not_roll_back_fails_the_rehearsal(tmp_path):
    # The on-call restarts the pods instead of undoing the rollout: the bad release keeps serving.
    feature = tmp_path / "wrong.feature"
    feature.write_text((REPO / "features" / "kubernetes_rollback.feature").read_text()
                       .replace("kubectl rollout undo deployment/demo", "kubectl rollout restart deployment/demo")
                       .replace("again within 60 seconds", "again within 15 seconds"))
    code, journal = run_feature(feature, tmp_path)
    [scenario] = journal["scenarios"]
    assert code == 1
    assert scenario["status"] == "failed"
    assert "served by 1.0.0" in scenario["error"] and "did not hold within 15s" in scenario["error"]
