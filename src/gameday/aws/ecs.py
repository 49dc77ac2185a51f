"""Small boto3 helpers for ECS: releases as task definitions, service views, task addresses."""

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
