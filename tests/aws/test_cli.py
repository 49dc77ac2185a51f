"""`gameday aws check-state`: a pipeline's state file checked against the AWS in the environment."""

from __future__ import annotations

from click.testing import CliRunner

from gameday.aws import ecs as ecs_api
from gameday.aws.cli import aws
from gameday.aws.moto_server import MotoServer
from gameday.procedures.ecs_rollback import fake_sha, write_rollback_state


def test_check_state_against_moto(moto: MotoServer, make_service, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    spec = make_service("gameday-test/webapp", 1)
    arn = ecs_api.register(moto.client("ecs"), spec.release("1.0.0"))
    path = write_rollback_state(tmp_path / ".rollback_state", deployment_id="ecs-svc/1", prev_task=arn.rsplit("/", 1)[-1],
                                prev_sha=fake_sha("1.0.0")[:12])
    done = CliRunner().invoke(aws, ["check-state", str(path)])
    assert done.exit_code == 0 and "valid" in done.output

    write_rollback_state(path, deployment_id="ecs-svc/1", prev_task=arn.rsplit("/", 1)[-1], prev_sha=fake_sha("0.9.0")[:12])
    done = CliRunner().invoke(aws, ["check-state", str(path)])
    assert done.exit_code == 1 and "does not match PREV_TASK" in done.output
