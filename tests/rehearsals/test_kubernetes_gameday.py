"""The shipped Kubernetes game day end to end: real control plane, process kubelet,
service proxy, locust traffic and kubectl, through `gameday run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.cluster.build import is_built
from gameday.journal import load, unclosed

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
    assert unclosed(load(journals[0])) == []  # closed, with what it ran on, whatever the verdict
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


def test_a_canary_drain_measures_every_phase_and_proves_its_effect(tmp_path):
    code, journal = run_feature(REPO / "features" / "kubernetes_canary.feature", tmp_path)
    [scenario] = journal["scenarios"]
    assert code == 0, scenario["error"]
    found = measurements(journal)
    assert found["traffic weight on demo-stable"]["value"] == 100
    assert found["time to detect"]["value"] >= 3  # 3 s of errors before the alarm holds
    commands = [e["message"] for s in journal["scenarios"] for st in s["steps"] for e in st["events"]
                if e["kind"] == "kubectl"]
    assert "kubectl delete deployment/demo-canary" in commands
    assert sum("patch virtualservice/demo" in c for c in commands) == 3  # 20 %, then 5 %, then 0 %
    [signals] = [e["data"] for e in scenario["events"] if e["kind"] == "signals"]
    incident = [p for p in signals["series"] if signals["marks"]["t0"] < p["t"] <= signals["marks"]["acted"]]
    canary_share = sum(p["requests"] * p["versions"].get("2.0.0-errors", 0) for p in incident) \
        / sum(p["requests"] for p in incident)
    assert 0.1 <= canary_share <= 0.3, canary_share  # the canary took its fifth of the traffic, no more
    after = [p for p in signals["series"] if p["error_rate"] is not None]
    assert after[-1]["error_rate"] == 0 and after[-1]["versions"] == {"1.0.0": 1.0}


def test_a_canary_left_behind_fails_the_drain(tmp_path):
    # One on-call leaves the canary Deployment running; another stops at 5 % and never drains it.
    text = (REPO / "features" / "kubernetes_canary.feature").read_text()
    scenario = text[text.index("  Scenario:"):]
    left_running = scenario.replace("    And the on-call engineer deletes the canary deployment of service \"demo\"\n", "")
    at_five = (scenario.replace("Scenario: A canary", "Scenario: Another canary")
               .replace("    And the on-call engineer sets the canary weight of service \"demo\" to 0%\n", "")
               .replace("    Then all traffic is served by release \"1.0.0\" again within 30 seconds\n    And", "    Then"))
    feature = tmp_path / "left.feature"
    feature.write_text(text[:text.index("  Scenario:")] + left_running + "\n" + at_five)
    code, journal = run_feature(feature, tmp_path)
    assert code == 1
    errors = {s["name"]: s["error"] for s in journal["scenarios"]}
    assert all(s["status"] == "failed" for s in journal["scenarios"]), errors
    assert "deployment/demo-canary still exists" in errors["A canary failing half of its requests is drained back "
                                                             "to stable"]
    assert "still sends 5% of the traffic elsewhere than demo-stable" in errors[
        "Another canary failing half of its requests is drained back to stable"]


def test_the_kill_switch_ends_the_errors_without_a_redeploy_and_its_absence_is_reverted(tmp_path):
    code, journal = run_feature(REPO / "features" / "feature_flag_kill_switch.feature", tmp_path)
    gated, ungated = journal["scenarios"]
    assert code == 0, (gated["error"], ungated["error"])
    commands = [e["message"] for st in gated["steps"] for e in st["events"] if e["kind"] == "kubectl"]
    assert any("patch configmap/demo-flags" in c and '"new-pricing": "off"' in c for c in commands)
    assert not any("rollout undo" in c or "set image" in c for c in commands)
    [signals] = [e["data"] for e in gated["events"] if e["kind"] == "signals"]
    after_flip = [p for p in signals["series"] if p["t"] > signals["marks"]["acted"] + 1 and p["error_rate"] is not None]
    during = [p for p in signals["series"] if signals["marks"]["t0"] < p["t"] <= signals["marks"]["acted"]
              and p["error_rate"] is not None]
    assert max(p["error_rate"] for p in during) > 0.2  # the flagged path really failed
    assert after_flip and all(p["error_rate"] == 0 for p in after_flip)  # and the flag alone ended it
    assert after_flip[-1]["versions"] == {"1.1.0": 1.0}  # on the same release: nothing was reverted
    assert "still serving (no revert)" in signals["recovery"]
    commands = [e["message"] for st in ungated["steps"] for e in st["events"] if e["kind"] == "kubectl"]
    assert "kubectl rollout undo deployment/demo" in commands


def test_the_kill_switch_checks_fail_when_the_flag_is_not_what_gates_the_errors(tmp_path):
    background = (REPO / "features" / "feature_flag_kill_switch.feature").read_text().split("  Scenario:")[0]
    flagged = 'rolled out with the fault "error-rate=0.5,flag=new-pricing"'
    unflagged = 'rolled out with the fault "error-rate=0.5"'
    feature = tmp_path / "wrong.feature"
    feature.write_text(background + f"""
  Scenario: the flag was expected to help but gates nothing
    When release "1.1.0" of deployment "demo" is {unflagged}
    Then the alarm for an error rate above 5% for 3 seconds fires within 90 seconds
    When the on-call engineer turns feature flag "new-pricing" of service "demo" off
    Then the error rate is back below 1% within 8 seconds

  Scenario: the flag was expected not to help but gates the errors
    When release "1.1.0" of deployment "demo" is {flagged}
    Then the alarm for an error rate above 5% for 3 seconds fires within 90 seconds
    When the on-call engineer turns feature flag "new-pricing" of service "demo" off
    Then the error rate stays above 5% for 5 seconds

  Scenario: the release was reverted after the kill switch after all
    When release "1.1.0" of deployment "demo" is {flagged}
    Then the alarm for an error rate above 5% for 3 seconds fires within 90 seconds
    When the on-call engineer turns feature flag "new-pricing" of service "demo" off
    And the on-call engineer undoes the rollout of deployment "demo"
    Then all traffic is served by release "1.0.0" again within 60 seconds
    And deployment "demo" was not redeployed
""")
    code, journal = run_feature(feature, tmp_path)
    assert code == 1
    errors = {s["name"]: (s["status"], s["error"]) for s in journal["scenarios"]}
    assert errors["the flag was expected to help but gates nothing"][0] == "failed"
    assert "the errors did not stop" in errors["the flag was expected to help but gates nothing"][1]
    assert "the errors stopped after the on-call's action, so it did help" in \
        errors["the flag was expected not to help but gates the errors"][1]
    assert "deployment/demo was redeployed after the kill switch: generation 2 -> 3" in \
        errors["the release was reverted after the kill switch after all"][1]


def test_a_rolling_update_is_halted_part_way_and_its_pods_reverted(tmp_path):
    code, journal = run_feature(REPO / "features" / "kubernetes_rolling_halt.feature", tmp_path)
    [scenario] = journal["scenarios"]
    assert code == 0, scenario["error"]
    found = measurements(journal)
    assert 1 <= found["pods of deployment/demo updated when halted"]["value"] <= 3
    verified = [e["message"] for st in scenario["steps"] for e in st["events"] if e["kind"] == "verify"]
    assert "deployment/demo: 0 pods of 2.0.0-errors left" in verified
    assert found["restarts of deployment/demo"]["value"] == 0 and found["error rate over 5 s"]["passed"] is True
    [signals] = [e["data"] for e in scenario["events"] if e["kind"] == "signals"]
    incident = [p for p in signals["series"] if signals["marks"]["t0"] < p["t"] <= signals["marks"]["acted"]
                and p["requests"]]
    worst = max(p["versions"].get("2.0.0-errors", 0) for p in incident)
    assert 0 < worst <= 0.5, worst  # the bad release reached some pods, never most of the traffic


def test_blue_green_by_selector_and_by_hand_both_measure_and_prove_their_counts(tmp_path):
    code, journal = run_feature(REPO / "features" / "kubernetes_blue_green.feature", tmp_path)
    assert code == 0, [s["error"] for s in journal["scenarios"]]
    by_hand = journal["scenarios"][1]
    commands = [e["message"] for st in by_hand["steps"] for e in st["events"] if e["kind"] == "kubectl"]
    assert "kubectl scale deployment/demo-green --replicas=0" in commands
    verified = [e["message"] for st in by_hand["steps"] for e in st["events"] if e["kind"] == "verify"]
    assert "deployment/demo-blue: 4 ready of 4 desired replicas" in verified
    assert "deployment/demo-green: 0 ready of 0 desired replicas" in verified


def test_a_late_halt_and_a_forgotten_scale_down_fail_with_what_was_measured(tmp_path):
    rolling = (REPO / "features" / "kubernetes_rolling_halt.feature").read_text()
    by_hand = (REPO / "features" / "kubernetes_blue_green.feature").read_text()
    too_fast = rolling[rolling.index("  Scenario:"):].replace("each watched for 10 seconds", "each watched for 0 seconds")
    too_fast = too_fast.replace("    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds\n",
                                "    Then the rollout of deployment \"demo\" completes within 60 seconds\n")
    forgotten = by_hand[by_hand.index("  Scenario: By hand"):].replace(
        '    And the on-call engineer scales deployment "demo-green" to 0 replicas\n', "")
    strict = (rolling[rolling.index("  Scenario:"):].replace("Scenario: A release", "Scenario: Strictly, a release")
              .replace("| p99 latency | < 2000 ms |", "| p99 latency | < 0.01 ms |"))
    feature = tmp_path / "late.feature"
    feature.write_text("Feature: late\n" + too_fast + "\n" + forgotten + "\n" + strict)
    code, journal = run_feature(feature, tmp_path)
    assert code == 1
    errors = [s["error"] for s in journal["scenarios"]]
    assert "was halted only after all 4 pods were updated" in errors[0], errors
    assert "deployment/demo-green has 2 ready of 2 desired replicas, expected 0" in errors[1], errors
    assert "the runbook's success criteria were missed: " in errors[2] and "p99" in errors[2], errors
    p99 = [m for st in journal["scenarios"][2]["steps"] for m in st["measurements"] if m["name"].startswith("p99")]
    assert p99 and p99[0]["passed"] is False and p99[0]["value"] > 0.01  # the miss, measured


def test_the_automatic_rollback_fires_on_the_rule_that_holds_and_its_delay_is_decide(tmp_path):
    code, journal = run_feature(REPO / "features" / "automatic_rollback.feature", tmp_path)
    assert code == 0, [s["error"] for s in journal["scenarios"]]
    fired = [[e for st in s["steps"] for e in st["events"] if e["kind"] == "automatic-rollback"]
             for s in journal["scenarios"]]
    assert [f[0]["data"]["rule"] for f in fired] == ["error rate above 5 % for 4 s", "p95 latency above 2 × baseline for 8 s",
                                                    "error rate above 5 % for 4 s",
                                                    "health checks failing above 20 % for 4 s"]
    for scenario, [event] in zip(journal["scenarios"], fired, strict=True):
        found = {m["name"]: m for st in scenario["steps"] for m in st["measurements"]}
        assert "automatic rollback's own delay" in found["time to decide"]["detail"]
        # held when the requests say so, seen by a later evaluation; decide is that wait plus issuing the action
        waited = event["data"]["evaluated_at"] - event["data"]["held_at"]
        assert waited >= 0
        assert found["time to decide"]["value"] >= waited - 0.01
        assert found["time to detect"]["value"] >= 4  # the rule needs 4 s (8 s) of the condition
    commands = [e["message"] for st in journal["scenarios"][2]["steps"] for e in st["events"] if e["kind"] == "kubectl"]
    assert any("patch virtualservice/demo" in c and '"value": 0}' in c for c in commands)
    # pods that never pass their health checks: the traffic never shows it (the previous pods serve), the
    # health checks do, and only they would have fired
    unhealthy = journal["scenarios"][3]
    [backtest] = [e["data"]["rows"] for e in unhealthy["events"] if e["kind"] == "backtest"]
    fires = {row["rule"]: row["fires_at"] for row in backtest}
    assert fires["automatic: error rate above 5 % for 4 s"] is None
    assert fires["automatic: health checks failing above 20 % for 4 s"] is not None
    [signals] = [e["data"] for e in unhealthy["events"] if e["kind"] == "signals"]
    assert all(p["error_rate"] in (None, 0) for p in signals["series"])


def test_an_automatic_rollback_whose_rules_never_hold_fails_and_rolls_nothing_back(tmp_path):
    feature = tmp_path / "never.feature"
    text = (REPO / "features" / "automatic_rollback.feature").read_text()
    first = text[:text.index("  Scenario: A slow release")]
    feature.write_text(first.replace("| error rate above  | 5 %          | 4 s |", "| error rate above  | 80 %         | 4 s |")
                       .replace("fires within 60 seconds", "fires within 12 seconds"))
    code, journal = run_feature(feature, tmp_path)
    [scenario] = journal["scenarios"]
    assert code == 1 and scenario["status"] == "failed"
    assert "no rule of the automatic rollback held within 12s" in scenario["error"], scenario["error"]
    commands = [e["message"] for st in scenario["steps"] for e in st["events"] if e["kind"] == "kubectl"]
    assert not any("rollout undo" in c for c in commands)


def test_a_rollback_to_a_pruned_or_crashing_release_is_seen_failing_and_the_escalation_is_timed(tmp_path):
    text = (REPO / "features" / "failed_rollback.feature").read_text()
    first = text[text.index("  Scenario:"):text.index("  Scenario:", text.index("  Scenario:") + 1)]
    not_broken = (first.replace("  Scenario: The previous image", "  Scenario: Still there: the previous image")
                  .replace('    And the registry no longer has release "1.0.0"\n', ""))
    feature = tmp_path / "failed.feature"
    feature.write_text(text + "\n" + not_broken)
    code, journal = run_feature(feature, tmp_path)
    pruned, crashing, kept = journal["scenarios"]
    for scenario, reasons in ((pruned, ("ErrImagePull", "ImagePullBackOff")), (crashing, ("CrashLoopBackOff",))):
        assert scenario["status"] == "passed", scenario["error"]
        found = {m["name"]: m for st in scenario["steps"] for m in st["measurements"]}
        assert 0 < found["time to see the rollback fail"]["value"] <= 60
        assert found["time to recover after the rollback failed (escalation)"]["value"] > 0
        stuck = [e["message"] for st in scenario["steps"] for e in st["events"] if e["kind"] == "rollback-stuck"]
        assert stuck and any(reason in stuck[0] for reason in reasons), stuck
    # the previous release kept serving until the bad deploy: it broke only for new containers
    [signals] = [e["data"] for part in (crashing, *crashing["steps"]) for e in part["events"] if e["kind"] == "signals"]
    before = [p for p in signals["series"] if p["t"] < signals["marks"]["t0"] and p["error_rate"] is not None]
    assert before and all(p["error_rate"] == 0 for p in before)
    # the registry serves the image again after the scenario, and the release starts again: the next
    # scenario rolls back to it
    assert code == 1 and kept["status"] == "failed"
    assert "completed its rollback: it did not fail" in kept["error"], kept["error"]


def _scenario_figures(scenario: dict) -> list[tuple[str, float, str]]:
    return [(m["name"], m["value"], m.get("detail") or "") for st in scenario["steps"] for m in st["measurements"]]


def _errors(scenario: dict, endpoint: str, phase: str) -> float:
    """The share of ``endpoint``'s requests that failed in one phase of the scenario's per-endpoint table."""
    [table] = [e["data"]["rows"] for e in scenario["events"] if e["kind"] == "endpoints"]
    return next(r for r in table if r["endpoint"] == endpoint)["phases"][phase]["error_rate"]


def _figure(figures: list[tuple[str, float, str]], name: str) -> list[float]:
    return [value for found, value, _ in figures if found == name]


def test_a_release_that_migrated_the_database_is_rolled_back_under_load_and_the_order_matters(tmp_path):
    code, journal = run_feature(REPO / "features" / "release_migration_rollback.feature", tmp_path)
    expand, breaking, reversed_first = journal["scenarios"]
    assert code == 0, [s["error"] for s in journal["scenarios"]]
    # expand only: the code went back alone, the migration stayed, and what 1.1.0 wrote is still there
    figures = _scenario_figures(expand)
    assert not any(name == "alembic downgrade act" for name, _, _ in figures)
    [writes] = _figure(figures, "POST /api/orders error rate over 3s")
    assert writes <= 1
    kept = next(value for name, value, _ in figures if name == "values of orders.discount_cents kept")
    assert kept > 0
    # one step: the previous release cannot write on the new schema until the migration goes back too
    figures = _scenario_figures(breaking)
    # after the code rollback (a pod of 1.3.0 still terminating may take a write), then after the migration's
    after_code, after_migration = _figure(figures, "POST /api/orders error rate over 3s")
    assert after_code > 90 and after_migration <= 1
    [reads] = _figure(figures, "GET /api/orders error rate over 3s")
    assert reads <= 1  # the reads kept working on the new schema
    [(_, lost, detail)] = [f for f in figures if f[0] == "values of orders.currency lost by the migration rollback"]
    written_during = int(detail.split()[0])
    assert lost >= 1000 and written_during > 0  # the backfilled seed rows and what 1.3.0 wrote
    [data] = [e["data"] for e in breaking["events"] if e["kind"] == "data"]
    assert data["dropped"]["orders.currency"]["written_during"] == written_during and data["rows_added"]["orders"] > 0
    # the migration reversed while 1.3.0 still ran: it lost its column, and the reads failed with it
    assert _errors(reversed_first, "GET /api/orders", "acting") > _errors(breaking, "GET /api/orders", "acting") + 0.3
    text = json.dumps(journal)
    assert "secretKeyRef" not in text and "DATABASE_URL=" not in text


def test_rolling_back_only_the_code_after_a_one_step_migration_fails_saying_what_still_fails(tmp_path):
    text = (REPO / "features" / "release_migration_rollback.feature").read_text()
    header = text.split("  Scenario:")[0]
    breaking = "  Scenario: A one-step migration" + text.split("  Scenario: A one-step migration")[1].split("\n  Scenario:")[0]
    kept = [line for line in breaking.splitlines()  # the checks after the code rollback, and the migration's
            if "of its requests for 3 seconds" not in line and "rolls back migration" not in line]
    feature = tmp_path / "code_only.feature"
    feature.write_text(header + "\n".join(kept).replace("again within 60 seconds", "again within 15 seconds") + "\n")
    code, journal = run_feature(feature, tmp_path)
    [scenario] = journal["scenarios"]
    assert code == 1 and scenario["status"] == "failed"
    assert "did not hold within 15s" in scenario["error"], scenario["error"]
    # once the undo was done, only 1.2.0 served: its writes refused by the NOT NULL column, its reads fine
    assert _errors(scenario, "POST /api/orders", "after") > 0.9
    assert _errors(scenario, "GET /api/orders", "after") < 0.1
