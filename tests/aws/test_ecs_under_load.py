"""ECS rollback under load: a load balancer in front of the healthy tasks, the service's load through it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gameday.aws.balancer import TaskBalancer, healthy_targets

REPO = Path(__file__).resolve().parents[2]


def task(arn: str, port: int, *, status: str = "RUNNING", health: str = "HEALTHY") -> dict[str, Any]:
    return {"taskArn": arn, "lastStatus": status, "healthStatus": health,
            "containers": [{"networkBindings": [{"bindIP": "127.0.0.1", "hostPort": port}]}]}


class FakeEcs:
    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks

    def list_tasks(self, **kwargs: Any) -> dict[str, Any]:
        return {"taskArns": [t["taskArn"] for t in self.tasks]}

    def describe_tasks(self, *, cluster: str, tasks: list[str]) -> dict[str, Any]:
        return {"tasks": [t for t in self.tasks if t["taskArn"] in tasks]}


def backend(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_only_running_healthy_tasks_are_targets():
    ecs = FakeEcs([task("a", 1001), task("b", 1002, health="UNHEALTHY"), task("c", 1003, health="UNKNOWN"),
                   task("d", 1004, status="PENDING"), task("e", 1005)])
    assert healthy_targets(ecs, "c", "s") == [("127.0.0.1", 1001), ("127.0.0.1", 1005)]


def test_requests_go_round_robin_to_healthy_tasks_and_503_when_none_is_left():
    one, two = backend("one"), backend("two")
    ecs = FakeEcs([task("a", one.server_address[1]), task("b", two.server_address[1])])
    balancer = TaskBalancer(ecs, "c", "s").start()
    try:
        answers = [get(balancer.url + "/")[1] for _ in range(6)]
        assert sorted(set(answers)) == ["one", "two"] and answers.count("one") == 3
        ecs.tasks = [task("b", two.server_address[1], health="UNHEALTHY")]  # the target group empties
        deadline = time.monotonic() + 5
        while get(balancer.url + "/")[0] != 503:
            assert time.monotonic() < deadline, "the balancer kept sending traffic to an unhealthy task"
            time.sleep(0.05)
    finally:
        balancer.stop()
        one.shutdown()
        two.shutdown()
    assert not any(t.name.startswith("gameday-ecs-") for t in threading.enumerate())


def test_the_rollback_under_load_measures_every_phase_and_an_impossible_target_fails_with_its_figure(tmp_path):
    # The shipped scenario (run in test_features) with a detect target no ECS rollout can meet: every
    # figure is still measured, and the verdict names the one missed, with its value.
    text = (REPO / "features" / "ecs_rollback.feature").read_text()
    header = text.split("  Scenario")[0]
    under_load = "  Scenario: A release failing half" + text.split("  Scenario: A release failing half")[1].split(
        "\n  Scenario:")[0]
    feature = tmp_path / "ecs_load.feature"
    feature.write_text(header + under_load.replace("| detect  | 60 s   |", "| detect  | 1 s    |") + "\n")
    result = subprocess.run([sys.executable, "-m", "gameday.cli", "run", str(feature), "--reports", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    [journal_file] = (tmp_path / "r").glob("*/journal.json")
    [scenario] = json.loads(journal_file.read_text())["scenarios"]
    assert result.returncode == 1 and scenario["status"] == "failed", scenario["error"]
    found = {m["name"]: m for st in scenario["steps"] for m in st["measurements"]}
    detect = found["time to detect"]["value"]
    # the new tasks take traffic only once healthy: errors are seen after a health-check interval
    assert detect >= 3 and found["time to act"]["value"] > 0 and found["time to detect"]["passed"] is False
    assert re.search(r"targets: detect \d+\.\d s > 1 s", scenario["error"]), scenario["error"]
    [signals] = [e["data"] for e in scenario["events"] if e["kind"] == "signals"]
    after = [p for p in signals["series"] if p["t"] > signals["marks"]["t0"] and p["error_rate"] is not None]
    assert max(p["error_rate"] for p in after) > 0.2 and after[-1]["versions"] == {"1.0.0": 1.0}
    assert any(e["kind"] == "backtest" for e in scenario["events"])
