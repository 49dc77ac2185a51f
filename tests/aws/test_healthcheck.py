"""ECS health checks: aimed at the task's own address, Docker's counting rules."""

from __future__ import annotations

import pytest

from gameday.aws.healthcheck import HEALTHY, UNHEALTHY, UNKNOWN, HealthCheck, HealthState
from gameday.errors import ConfigError


def _container(command: list[str], **extra: object) -> dict:
    return {"name": "app", "healthCheck": {"command": command, **extra}}


def test_localhost_is_rewritten_to_the_task_address() -> None:
    check = HealthCheck.from_container(
        _container(["CMD-SHELL", "curl -f http://localhost:8080/ready && curl -f http://127.0.0.1:8080/x"]), "127.42.0.7")
    assert check is not None
    assert check.argv == ["/bin/sh", "-c", "curl -f http://127.42.0.7:8080/ready && curl -f http://127.42.0.7:8080/x"]
    # hostnames that merely contain "localhost" stay as they are
    other = HealthCheck.from_container(_container(["CMD", "ping", "mylocalhost.example"]), "127.42.0.7")
    assert other is not None and other.argv == ["ping", "mylocalhost.example"]


def test_no_check_and_none_and_empty() -> None:
    assert HealthCheck.from_container({"name": "app"}, "127.42.0.2") is None
    assert HealthCheck.from_container(_container(["NONE"]), "127.42.0.2") is None
    with pytest.raises(ConfigError, match="healthCheck command is empty"):
        HealthCheck.from_container(_container(["CMD"]), "127.42.0.2")


def test_the_command_really_runs() -> None:
    passing = HealthCheck(argv=["/bin/sh", "-c", "test \"$PORT\" = 8080"])
    assert passing.run({"PORT": "8080"})[0] is True
    assert passing.run({"PORT": "9090"})[0] is False
    slow = HealthCheck(argv=["/bin/sh", "-c", "sleep 5"], timeout=0.2)
    assert slow.run({}) == (False, "timed out after 0.2s")


def test_docker_counting_rules() -> None:
    state = HealthState(HealthCheck(argv=["true"], interval=5, retries=2, start_period=10), started=100.0)
    assert not state.due(104.0) and state.due(105.0)  # first probe one interval after start
    state.record(105.0, False, "503")
    assert state.status == UNKNOWN and state.failures == 0  # inside the start period: forgiven
    state.record(111.0, False, "503")
    assert state.status == UNKNOWN and state.failures == 1
    state.record(116.0, True, "ok")
    assert state.status == HEALTHY and state.failures == 0
    state.record(121.0, False, "503")
    state.record(126.0, False, "503")
    assert state.status == UNHEALTHY
