"""Real AWS only when asked for, and then only on targets tagged as rehearsal targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gameday.aws import ecs as ecs_api
from gameday.aws.moto_server import MotoServer
from gameday.aws.target import REHEARSAL_TAG, RealAws, aws_target
from gameday.errors import ConfigError, GameDayError, RehearsalFailed
from gameday.procedures.ecs_rollback import EcsRollbackRehearsal


class LooksLikeRealAws:
    """moto's API, but treated as an account gameday does not own (no blanket rehearsal flag)."""

    rehearsal = False

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto

    def client(self, service: str) -> Any:
        return self.moto.client(service)


def _service(moto: MotoServer, make_service, workdir: Path, tag_service: bool) -> EcsRollbackRehearsal:  # type: ignore[no-untyped-def]
    """A service on an untagged cluster, left with a rollback state file pointing at revision 1."""
    spec = make_service("gameday-test/webapp", 1)
    ecs = moto.client("ecs")
    ecs.create_cluster(clusterName=spec.cluster)  # no gameday:rehearsal tag
    arn = ecs_api.register(ecs, spec.release("1.0.0"))
    tags = [{"key": REHEARSAL_TAG, "value": "true"}] if tag_service else []
    ecs.create_service(cluster=spec.cluster, serviceName=spec.name, taskDefinition=arn, desiredCount=1, **({"tags": tags} if tags else {}))
    rehearsal = EcsRollbackRehearsal(LooksLikeRealAws(moto), spec, workdir)
    rehearsal.current = rehearsal.previous = arn
    rehearsal.leave_rollback_state()
    return rehearsal


def test_untagged_targets_are_refused_in_one_line(moto: MotoServer, make_service, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GAMEDAY_ALLOW_NON_REHEARSAL", raising=False)
    rehearsal = _service(moto, make_service, tmp_path, tag_service=False)
    with pytest.raises(GameDayError) as caught:
        rehearsal.roll_back()
    assert not isinstance(caught.value, RehearsalFailed)  # a harness refusal, not a failed rehearsal
    line = caught.value.one_line()
    assert "\n" not in line and "not tagged gameday:rehearsal=true" in line and rehearsal.spec.cluster in line
    service = ecs_api.describe_service(rehearsal.ecs, rehearsal.spec.cluster, rehearsal.spec.name)
    assert len(service["deployments"]) == 1  # nothing was changed

    monkeypatch.setenv("GAMEDAY_ALLOW_NON_REHEARSAL", "1")
    rehearsal.roll_back()  # the override lets it through


def test_a_tagged_service_is_a_rehearsal_target(moto: MotoServer, make_service, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GAMEDAY_ALLOW_NON_REHEARSAL", raising=False)
    rehearsal = _service(moto, make_service, tmp_path, tag_service=True)
    rehearsal.roll_back()


def test_target_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMEDAY_AWS", "real")
    assert isinstance(aws_target(), RealAws)
    monkeypatch.setenv("GAMEDAY_AWS", "prod")
    with pytest.raises(ConfigError, match="aws provider 'prod' is unknown"):
        aws_target()
    monkeypatch.delenv("GAMEDAY_AWS")
    assert isinstance(aws_target(), MotoServer)


def test_moto_gets_throwaway_credentials_only(moto: MotoServer) -> None:
    env = moto.env()
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
