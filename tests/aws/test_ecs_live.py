"""A live game day on ECS: the people roll the service back however they choose, gameday watches the
service and measures their decide from the API's own record of their update-service."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import boto3

from gameday.procedures.ecs_rollback import parse_rollback_state

HANDOVER = re.compile(r"export AWS_ENDPOINT_URL=(\S+)\s+\(ECS service (\S+) in cluster (\S+); the pipeline's "
                      r"rollback state: (\S+);")
FEATURE = """Feature: a live ECS game day
  Scenario: The people roll the service back
    Given an ECS service "orders" running release 1.0.0 with 2 tasks
    When release 2.0.0-crash is deployed to the service
    Then the new deployment fails its health checks
    Given the pipeline left a rollback state file pointing at the previous task definition
    When the on-call engineer rolls back to PREV_TASK from the rollback state file
    Then the service is stable again within 60 seconds
    And the service and its only deployment run the previous task definition
    And every task serves release 1.0.0
"""


def test_the_people_roll_the_ecs_service_back_and_their_decide_is_measured(tmp_path: Path, live_game_day):
    acted: list[tuple[float, float]] = []

    def person(endpoint: str, service: str, cluster: str, state_file: str) -> None:
        time.sleep(random.uniform(0.3, 2.0))  # a random moment after the hand-over
        prev_task = parse_rollback_state(Path(state_file))["PREV_TASK"]
        ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="person", aws_secret_access_key="person")
        sent = time.time()
        ecs.update_service(cluster=cluster, service=service, taskDefinition=prev_task, forceNewDeployment=True)
        acted.append((sent, time.time()))

    run = live_game_day(tmp_path, FEATURE, HANDOVER, person)
    assert run.code == 0, run.said
    scenario = run.the_one_scenario()
    events = [e for part in (scenario, *scenario["steps"]) for e in part["events"]]
    measured = {m["name"]: m for st in scenario["steps"] for m in st["measurements"]}
    [(sent, returned)] = acted
    [action] = [e for e in events if e["kind"] == "live-action"]
    assert sent - 0.05 <= action["data"]["at"] <= returned + 0.05, (sent, returned, action)
    assert "people on call" in measured["ecs.time_to_decide"]["detail"]
    assert [e for e in events if e["kind"] == "ecs.rollback"] == []  # gameday did not roll back itself
    assert measured["ecs.rollback_time_to_stable"]["value"] > 0
