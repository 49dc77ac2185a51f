"""The task runner keeps moto's ECS view truthful: deployments, counts and tasks come
from real processes of a throwaway image (tests/aws/images.yaml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from gameday.aws import ecs as ecs_api
from gameday.aws.moto_server import MotoServer
from gameday.load import ReleaseReader

WEBAPP_RELEASE = ReleaseReader(header="X-Served-By-Version")

REPO = "gameday-test/webapp"


@pytest.fixture
def service(moto: MotoServer, make_service):  # type: ignore[no-untyped-def]
    """create(tasks, tag) -> (ecs client, spec, task definition ARN) of a new service."""

    def create(tasks: int = 2, tag: str = "1.0.0"):  # type: ignore[no-untyped-def]
        return _service(moto, make_service(REPO, tasks), tag)

    return create


def _service(moto: MotoServer, spec, tag: str):  # type: ignore[no-untyped-def]
    tasks = spec.tasks
    ecs = moto.client("ecs")
    ecs_api.ensure_cluster(ecs, spec.cluster)
    arn = ecs_api.register(ecs, spec.release(tag))
    ecs.create_service(cluster=spec.cluster, serviceName=spec.name, taskDefinition=arn, desiredCount=tasks)
    return ecs, spec, arn


def test_services_stable_waits_for_healthy_processes(moto: MotoServer, service) -> None:
    ecs, spec, _ = service()
    # right after create-service nothing is healthy yet: moto alone would claim runningCount == desired
    first = ecs_api.describe_service(ecs, spec.cluster, spec.name)
    assert first["runningCount"] == 0 and first["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert ecs_api.wait_stable(ecs, spec.cluster, spec.name, timeout=30) is not None
    view = ecs_api.describe_service(ecs, spec.cluster, spec.name)
    assert view["runningCount"] == 2 and view["deployments"][0]["rolloutState"] == "COMPLETED"
    assert any("steady state" in e["message"] for e in view["events"])
    for task in ecs_api.running_tasks(ecs, spec.cluster, spec.name):
        assert task.address.startswith("127.42.") and ecs_api.served_version(task.address, reader=WEBAPP_RELEASE) == "1.0.0"


def test_force_new_deployment_replaces_every_task(moto: MotoServer, service) -> None:
    ecs, spec, arn = service()
    assert ecs_api.wait_stable(ecs, spec.cluster, spec.name, timeout=30) is not None
    before = {t.arn for t in ecs_api.running_tasks(ecs, spec.cluster, spec.name)}
    ecs.update_service(cluster=spec.cluster, service=spec.name, forceNewDeployment=True)
    view = ecs_api.describe_service(ecs, spec.cluster, spec.name)
    # the new deployment is visible in the update's own aftermath, not a tick later
    assert [d["status"] for d in view["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert ecs_api.wait_stable(ecs, spec.cluster, spec.name, timeout=30) is not None
    after = {t.arn for t in ecs_api.running_tasks(ecs, spec.cluster, spec.name)}
    assert len(after) == 2 and not (before & after)
    stopped = ecs.describe_tasks(cluster=spec.cluster, tasks=sorted(before))["tasks"]
    assert {t["lastStatus"] for t in stopped} == {"STOPPED"}


def test_stop_task_is_replaced_by_the_scheduler(moto: MotoServer, service) -> None:
    ecs, spec, _ = service(tasks=1)
    assert ecs_api.wait_stable(ecs, spec.cluster, spec.name, timeout=30) is not None
    [task] = ecs_api.running_tasks(ecs, spec.cluster, spec.name)
    ecs.stop_task(cluster=spec.cluster, task=task.arn, reason="game day")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tasks = ecs_api.running_tasks(ecs, spec.cluster, spec.name)
        if tasks and tasks[0].arn != task.arn and tasks[0].health == "HEALTHY":
            break
        time.sleep(0.3)
    else:
        pytest.fail("the stopped task was not replaced by a healthy one")
    with pytest.raises(OSError):
        ecs_api.served_version(task.address, timeout=1)  # the old process is really gone


def test_image_missing_from_the_catalog_fails_tasks(moto: MotoServer, service) -> None:
    ecs, spec, _ = service(tasks=1, tag="9.9.9")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = ecs_api.describe_service(ecs, spec.cluster, spec.name)
        if view["deployments"][0]["failedTasks"]:
            break
        time.sleep(0.3)
    stopped = ecs.list_tasks(cluster=spec.cluster, desiredStatus="STOPPED")["taskArns"]
    reasons = {t["stoppedReason"] for t in ecs.describe_tasks(cluster=spec.cluster, tasks=stopped)["tasks"]}
    assert any("CannotPullContainerError" in r and "9.9.9" in r for r in reasons)


@pytest.mark.skipif(shutil.which("aws") is None, reason="awscli not installed")
def test_aws_cli_wait_services_stable(moto: MotoServer, service) -> None:
    ecs, spec, _ = service(tasks=1)
    assert ecs_api.wait_stable(ecs, spec.cluster, spec.name, timeout=30) is not None
    # the runbook's own command, against the moto endpoint (stable now: its first poll succeeds)
    done = subprocess.run(
        ["aws", "ecs", "wait", "services-stable", "--cluster", spec.cluster, "--services", spec.name],
        env={**os.environ, **moto.env()}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
