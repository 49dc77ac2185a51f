"""Small boto3 helpers for ECS: releases as task definitions, service views, task addresses,
and when things happened to a service's tasks (:func:`task_times`)."""

from __future__ import annotations

import ipaddress
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from gameday.aws.target import REHEARSAL_TAG
from gameday.images import split_reference

# Task attributes gameday's task runner writes (ECS publishes no such instants); see task_runner.
HEALTHY_AT = "gameday.healthyAt"  # epoch seconds: the health check that made the task HEALTHY finished
FAILED_AT = "gameday.failedAt"  # epoch seconds: the task failed on its own (exit, health checks, image)
RECONCILE_TICK = "gameday.reconcileTick"  # seconds between the runner's reconciles


@dataclass(frozen=True)
class Release:
    """One version of a service, as the container image tag of its task definition."""

    family: str
    repository: str
    version: str
    container_port: int = 8080
    health_path: str = "/ready"
    health_interval_s: int = 5  # the ECS minimum; tests may go lower (moto does not check)
    health_retries: int = 2
    git_sha: str = ""
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def image(self) -> str:
        return f"{self.repository}:{self.version}"

    def task_definition(self) -> dict[str, Any]:
        env = [{"name": k, "value": v} for k, v in self.environment]
        if self.git_sha:
            env.append({"name": "GIT_SHA", "value": self.git_sha})
        container = {
            "name": "app",
            "image": self.image,
            "essential": True,
            "memory": 256,
            "portMappings": [{"containerPort": self.container_port, "protocol": "tcp"}],
            "environment": env,
            "stopTimeout": 5,
            "healthCheck": {
                "command": ["CMD-SHELL", f"curl -fsS http://localhost:{self.container_port}{self.health_path} || exit 1"],
                "interval": int(self.health_interval_s),
                "timeout": 3,
                "retries": self.health_retries,
                "startPeriod": 0,
            },
        }
        tags = [{"key": "release", "value": self.version}]
        if self.git_sha:
            tags.append({"key": "git-sha", "value": self.git_sha})
        return {"family": self.family, "containerDefinitions": [container], "tags": tags}


def register(ecs: Any, release: Release) -> str:
    """Register the release's task definition; returns its ARN (family:revision)."""
    return str(ecs.register_task_definition(**release.task_definition())["taskDefinition"]["taskDefinitionArn"])


def ensure_cluster(ecs: Any, cluster: str) -> str:
    found = ecs.describe_clusters(clusters=[cluster]).get("clusters", [])
    if found and found[0].get("status") == "ACTIVE":
        return str(found[0]["clusterArn"])
    tags = [{"key": REHEARSAL_TAG, "value": "true"}]
    return str(ecs.create_cluster(clusterName=cluster, tags=tags)["cluster"]["clusterArn"])


def describe_service(ecs: Any, cluster: str, service: str) -> dict[str, Any]:
    found = ecs.describe_services(cluster=cluster, services=[service])
    if not found.get("services"):
        raise LookupError(f"service {service} not found in cluster {cluster}")
    return dict(found["services"][0])


def image_version(ecs: Any, task_definition: str) -> str:
    """The image tag of a task definition's first container: the release it runs."""
    definition = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    return split_reference(definition["containerDefinitions"][0]["image"])[1]


def task_definition_arn(ecs: Any, task_definition: str) -> str | None:
    """The full ARN of ``family``, ``family:rev`` or an ARN; None when not registered."""
    try:
        return str(ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]["taskDefinitionArn"])
    except ClientError:
        return None


@dataclass(frozen=True)
class TaskView:
    arn: str
    task_definition: str
    last_status: str
    health: str
    address: str | None  # host:port of the first container binding


def running_tasks(ecs: Any, cluster: str, service: str) -> list[TaskView]:
    arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING").get("taskArns", [])
    if not arns:
        return []
    views = []
    for task in ecs.describe_tasks(cluster=cluster, tasks=arns).get("tasks", []):
        bindings = [b for c in task.get("containers", []) for b in c.get("networkBindings") or []]
        address = f"{bindings[0]['bindIP']}:{bindings[0]['hostPort']}" if bindings else None
        views.append(TaskView(task["taskArn"], task["taskDefinitionArn"], task.get("lastStatus", ""),
                              task.get("healthStatus", "UNKNOWN"), address))
    return views


def health_check_interval(ecs: Any, task_definition: str) -> float | None:
    """The first container's health-check interval (seconds); None without a health check."""
    definition = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    checks = [c["healthCheck"] for c in definition["containerDefinitions"] if c.get("healthCheck")]
    return float(checks[0].get("interval", 30)) if checks else None


@dataclass(frozen=True)
class TaskTimes:
    """One task of a service and when things happened to it, as epoch seconds.

    ``started``, ``stopping`` and ``stopped`` are ECS's own timestamps; ``healthy``,
    ``failed`` and ``reconcile_tick`` come from the task attributes gameday's task runner
    writes, so they are None on real ECS.
    """

    arn: str
    task_definition: str
    started_by: str
    desired_status: str
    last_status: str
    stopped_reason: str = ""
    started: float | None = None
    stopping: float | None = None
    stopped: float | None = None
    healthy: float | None = None
    failed: float | None = None
    reconcile_tick: float | None = None

    @classmethod
    def of(cls, task: dict[str, Any]) -> TaskTimes:
        attributes = {a["name"]: a.get("value") for a in task.get("attributes") or [] if "name" in a}

        def stamp(key: str) -> float | None:
            value = task.get(key)
            return value.timestamp() if value is not None else None

        def number(name: str) -> float | None:
            try:
                return float(attributes[name])
            except (KeyError, TypeError, ValueError):
                return None

        return cls(
            arn=task["taskArn"], task_definition=task.get("taskDefinitionArn", ""), started_by=task.get("startedBy", ""),
            desired_status=task.get("desiredStatus", ""), last_status=task.get("lastStatus", ""),
            stopped_reason=task.get("stoppedReason", ""),
            started=stamp("startedAt"), stopping=stamp("stoppingAt"), stopped=stamp("stoppedAt"),
            healthy=number(HEALTHY_AT), failed=number(FAILED_AT), reconcile_tick=number(RECONCILE_TICK),
        )


def task_times(ecs: Any, cluster: str, service: str) -> list[TaskTimes]:
    """Every task of ``service`` ECS still lists, running and stopped, with its instants."""
    arns: list[str] = []
    for desired in ("RUNNING", "STOPPED"):
        kwargs: dict[str, Any] = {"cluster": cluster, "serviceName": service, "desiredStatus": desired}
        while True:
            page = ecs.list_tasks(**kwargs)
            arns += page.get("taskArns", [])
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    found: list[TaskTimes] = []
    for start in range(0, len(arns), 100):  # describe-tasks takes 100 at a time
        found += [TaskTimes.of(t) for t in ecs.describe_tasks(cluster=cluster, tasks=arns[start:start + 100]).get("tasks", [])]
    return found


@dataclass(frozen=True)
class StableMoment:
    """The event that completed a deployment: its instant and what it was."""

    at: float  # epoch seconds
    last: str  # "healthy": the last task of the target became healthy; "stopped": the last other task stopped
    reconcile_tick: float | None  # the runner's tick, as its tasks state it


def stable_moment(times: list[TaskTimes], since: float, task_definition: str) -> StableMoment | None:
    """When a service that is stable on ``task_definition`` got there, from its tasks' events.

    The later of: the last running task becoming healthy (every running task must be of
    ``task_definition`` and carry its healthy instant) and the last task stopped at or
    after ``since``.  None when the tasks do not carry those instants (real ECS).
    """
    running = [t for t in times if t.desired_status == "RUNNING"]
    if not running or any(t.task_definition != task_definition or t.healthy is None for t in running):
        return None
    healthy = max(t.healthy for t in running if t.healthy is not None)
    stops = [t.stopped for t in times if t.desired_status == "STOPPED" and t.stopped is not None and t.stopped >= since]
    ticks = {t.reconcile_tick for t in times if t.reconcile_tick is not None}
    tick = max(ticks) if ticks else None
    if stops and max(stops) > healthy:
        return StableMoment(max(stops), "stopped", tick)
    return StableMoment(healthy, "healthy", tick)


def first_failure(times: list[TaskTimes], deployment_id: str) -> TaskTimes | None:
    """The first task of deployment ``deployment_id`` to fail (by its ``failed`` instant); None if none carries one."""
    failed = [t for t in times if t.started_by == deployment_id and t.failed is not None]
    return min(failed, key=lambda t: t.failed or 0.0) if failed else None


def wait_stable(ecs: Any, cluster: str, service: str, timeout: float, delay: float = 1.0) -> float | None:
    """``aws ecs wait services-stable`` with a bounded timeout and ``delay`` s polling.

    Returns the seconds it took, or None when the service was not stable in time.
    """
    started = time.monotonic()
    waiter = ecs.get_waiter("services_stable")
    attempts = max(1, math.ceil(timeout / delay))
    try:
        waiter.wait(cluster=cluster, services=[service], WaiterConfig={"Delay": delay, "MaxAttempts": attempts})
    except WaiterError:
        return None
    return time.monotonic() - started


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.rsplit(":", 1)[0]).is_loopback
    except ValueError:
        return False


def served_version(address: str, path: str = "/version", timeout: float = 3.0, *, reader: Any = None) -> str:
    """GET ``path`` from a task and return the release that served it, read the way the project
    file says (``reader``, a gameday.load.ReleaseReader), else the start of the body."""
    if not is_loopback(address):
        raise ValueError(f"task address {address} is not a loopback address: gameday only sends traffic to 127.0.0.0/8")
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
            headers, body = response.headers, response.read(65536)
    except urllib.error.HTTPError as exc:
        headers, body, failed = exc.headers, exc.read(65536), f"HTTP {exc.code}"
    else:
        failed = ""
    named = reader.read(headers, body) if reader is not None else None
    return str(named or failed or body[:200].decode(errors="replace").strip())
