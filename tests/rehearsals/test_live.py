"""`gameday run --live`: the people on call roll back, gameday watches and measures.

A scripted "person" reads the hand-over line gameday prints, waits a random moment, and rolls
back by a method it does not announce (kubectl rollout undo, kubectl set image, a JSON patch
of the container image), noting when its command was sent and when it returned.  The run's
"acted" moment, and so its decide and act phases, must match the person's within 0.5 s.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from gameday.cluster import build
from gameday.report.figures import events_of, scenario_measurements

SCENARIO = """
  Scenario: {name}
    When release "2.0.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 2 seconds fires within 60 seconds
    When the on-call engineer undoes the rollout of deployment "demo"
    Then all traffic is served by release "1.0.0" again within 60 seconds
    And deployment "demo" runs release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase | target |
      | total | 240 s  |
"""
FEATURE = """Feature: a live game day
  Background:
    Given the service "demo" runs release "1.0.0" with 2 replicas
    And steady traffic from 4 users
"""
HANDOVER = re.compile(r"export KUBECONFIG=(\S+)\s+\(deployment/(\S+) in namespace (\S+)\)")
METHODS = ("undo", "set-image", "json-patch")


@pytest.fixture(autouse=True)
def _binaries() -> None:
    if not build.is_built():
        pytest.skip(f"Kubernetes binaries not built in {build.bin_dir()}: run `python -m gameday.cluster.build`")


def roll_back(method: str, kubeconfig: str, deployment: str, namespace: str) -> tuple[float, float]:
    """What the person types; returns (sent, returned) epoch seconds."""
    kubectl = ["kubectl", "--kubeconfig", kubeconfig, "-n", namespace]
    image = subprocess.run([*kubectl, "get", f"deployment/{deployment}", "-o",
                            "jsonpath={.spec.template.spec.containers[0].image}"],
                           capture_output=True, text=True, check=True, timeout=30).stdout
    stable = image.rsplit(":", 1)[0] + ":1.0.0"
    command = {
        "undo": ["rollout", "undo", f"deployment/{deployment}"],
        "set-image": ["set", "image", f"deployment/{deployment}", f"*={stable}"],
        "json-patch": ["patch", f"deployment/{deployment}", "--type=json", "-p",
                       json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image",
                                    "value": stable}])],
    }[method]
    sent = time.time()
    subprocess.run([*kubectl, *command], capture_output=True, text=True, check=True, timeout=30)
    return sent, time.time()


def test_the_people_roll_back_their_own_way_and_decide_and_act_are_measured_from_what_they_did(tmp_path,
                                                                                              live_game_day):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    methods = rng.sample(METHODS, 2)
    acted: list[tuple[str, float, float]] = []

    def person(kubeconfig: str, deployment: str, namespace: str) -> None:
        time.sleep(rng.uniform(0.3, 3.0))  # a random moment after the hand-over
        method = methods[len(acted)]
        acted.append((method, *roll_back(method, kubeconfig, deployment, namespace)))

    run = live_game_day(tmp_path, FEATURE + SCENARIO.format(name="first") + SCENARIO.format(name="second"),
                        HANDOVER, person)
    said = f"seed {seed}, methods {methods}:\n" + run.said
    assert run.code == 0, said
    journal = run.journal
    assert [s["status"] for s in journal["scenarios"]] == ["passed", "passed"], said
    assert len(acted) == 2, said
    for scenario, (method, sent, returned) in zip(journal["scenarios"], acted, strict=True):
        [signals] = [e["data"] for e in events_of(scenario, "signals")]
        origin, marks = signals["origin"], signals["marks"]
        measured_acted = origin + marks["acted"]
        # the API accepted the change between sending and the command's return; the watch told us then
        assert sent - 0.05 <= measured_acted <= returned + 0.5, (method, sent, returned, measured_acted, said)
        measured = {m["name"]: m for m in scenario_measurements(scenario)}
        figures = {name: m["value"] for name, m in measured.items()}
        truth_decide = returned - (origin + marks["detected"])
        truth_act = (origin + marks["done"]) - returned
        print(f"{method:10} decide {figures['time to decide']:.3f} s (person {truth_decide:.3f} s)  "
              f"act {figures['time to act']:.3f} s (person {truth_act:.3f} s)  command took {returned - sent:.3f} s")
        assert abs(figures["time to decide"] - truth_decide) <= 0.5, (method, figures, truth_decide)
        assert abs(figures["time to act"] - truth_act) <= 0.5, (method, figures, truth_act)
        assert "people on call" in measured["time to decide"]["detail"]
        actions = events_of(scenario, "live-action")
        assert actions and "image gameday/demo:2.0.0-errors -> gameday/demo:1.0.0" in actions[0]["message"], actions
    kubectl_events = [e for s in journal["scenarios"] for e in events_of(s, "kubectl") if "rollout undo" in e["message"]]
    assert kubectl_events == [], "gameday acted itself in a live game day"


def test_nobody_acting_fails_the_scenario_at_the_give_up_bound_after_a_hint(tmp_path, live_game_day):
    run = live_game_day(tmp_path, FEATURE + SCENARIO.format(name="nobody comes"), HANDOVER, lambda *_: None,
                        env={"GAMEDAY_LIVE_HINT_AFTER": "0", "GAMEDAY_LIVE_GIVE_UP": "4"}, timeout=300)
    out = "".join(run.output)
    assert run.code == 1, out
    assert "HINT: the scenario's scripted answer is: undo demo" in out, out
    scenario = run.the_one_scenario()
    assert scenario["status"] == "failed" and "nobody rolled back within 4 s" in scenario["error"], scenario["error"]


def test_the_people_drain_a_canary_and_the_weight_change_is_their_action(tmp_path, live_game_day):
    shipped = (Path(__file__).resolve().parents[2] / "features" / "kubernetes_canary.feature").read_text()
    acted: list[tuple[float, float]] = []

    def person(kubeconfig: str, _deployment: str, namespace: str) -> None:
        kubectl = ["kubectl", "--kubeconfig", kubeconfig, "-n", namespace]
        time.sleep(random.uniform(0.3, 2.0))
        drain = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100},
                 {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0}]
        sent = time.time()
        subprocess.run([*kubectl, "patch", "virtualservice/demo", "--type=json", "-p", json.dumps(drain)],
                       capture_output=True, check=True, timeout=30)
        acted.append((sent, time.time()))
        subprocess.run([*kubectl, "delete", "deployment/demo-canary"], capture_output=True, check=True, timeout=30)

    run = live_game_day(tmp_path, shipped, HANDOVER, person)
    assert run.code == 0, run.said
    scenario = run.the_one_scenario()
    assert scenario["status"] == "passed", run.said
    [(sent, returned)] = acted
    [signals] = [e["data"] for e in events_of(scenario, "signals")]
    assert sent - 0.05 <= signals["origin"] + signals["marks"]["acted"] <= returned + 0.5, (sent, returned, signals)
    actions = [e["message"] for e in events_of(scenario, "live-action")]
    assert actions and "demo-canary 20 -> demo-stable 100, demo-canary 0" in actions[0], actions
    assert not [e for e in events_of(scenario, "kubectl") if "patch virtualservice" in e["message"]
                and '"value": 0' in e["message"]], "gameday drained the canary itself in a live game day"


def test_the_people_throw_the_kill_switch_and_the_flag_change_is_their_action(tmp_path, live_game_day):
    shipped = (Path(__file__).resolve().parents[2] / "features" / "feature_flag_kill_switch.feature").read_text()
    gated = shipped[:shipped.index("  Scenario: The flag does not gate")]
    acted: list[tuple[float, float]] = []

    def person(kubeconfig: str, _deployment: str, namespace: str) -> None:
        time.sleep(random.uniform(0.3, 2.0))
        sent = time.time()
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "-n", namespace, "patch", "configmap/demo-flags",
                        "-p", json.dumps({"data": {"new-pricing": "off"}})], capture_output=True, check=True, timeout=30)
        acted.append((sent, time.time()))

    run = live_game_day(tmp_path, gated, HANDOVER, person)
    assert run.code == 0, run.said
    scenario = run.the_one_scenario()
    [(sent, returned)] = acted
    [signals] = [e["data"] for e in events_of(scenario, "signals")]
    assert sent - 0.05 <= signals["origin"] + signals["marks"]["acted"] <= returned + 0.5, (sent, returned, signals)
    actions = [e["message"] for e in events_of(scenario, "live-action")]
    assert actions == ["the people changed configmap/demo-flags: flags new-pricing on -> off"], actions
