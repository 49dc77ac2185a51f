"""`gameday aws moto|ecs-rollback|check-state`: the local AWS and the ECS rollback from a shell."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from gameday.console import err_console as console
from gameday.console import one_line_errors, serve_in_foreground
from gameday.errors import GameDayError

_images = click.option("--images", "images", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                       help="extra image catalog (repeatable; later files win)")


@click.group("aws")
def aws() -> None:
    """A local AWS (moto with real ECS task processes) and the ECS rollback rehearsal."""


@aws.command("moto")
@click.option("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
@click.option("--no-tasks", is_flag=True, help="API state only: do not run ECS tasks as processes")
@_images
@one_line_errors
def moto_command(port: int | None, no_tasks: bool, images: tuple[Path, ...]) -> None:
    """Run moto in the foreground until Ctrl-C; prints the environment for aws/boto3."""
    from gameday.aws.moto_server import MotoServer

    with MotoServer(port=port, run_tasks=not no_tasks, images=list(images)) as server:
        serve_in_foreground(server.env(), f"moto on {server.endpoint}"
                            + ("" if no_tasks else f"; task logs in {server.task_log_dir()}")
                            + "; Ctrl-C stops it and every task",
                            lambda: server._proc is not None and server._proc.poll() is None)
    console.print("stopped")


@aws.command("ecs-rollback")
@click.option("--tasks", type=click.IntRange(min=1, max=20), default=3, show_default=True)
@click.option("--good", default="1.0.0", show_default=True, help="the release to roll back to")
@click.option("--bad", default="2.0.0-crash", show_default=True, help="the broken release")
@click.option("--service", "service_name", default=None,
              help="the project file's service to rehearse (default: its default service)")
@click.option("--config", type=click.Path(path_type=Path), default=None, help="project file (default: the nearest)")
@click.option("--interval", type=click.IntRange(min=1), default=5, show_default=True,
              help="health check interval, seconds")
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True, help="services-stable bound, seconds")
@_images
@one_line_errors
def ecs_rollback_command(tasks: int, good: str, bad: str, service_name: str | None, config: Path | None,
                         interval: int, timeout: float, images: tuple[Path, ...]) -> None:
    """Rehearse the checklist's ECS rollback on a local moto with real task processes."""
    from gameday.aws.moto_server import MotoServer
    from gameday.journal import Journal
    from gameday.procedures.ecs_rollback import EcsRollbackRehearsal, EcsService

    journal = Journal()
    from gameday import project

    spec = EcsService.of(project.load(config).service(service_name), tasks=tasks, health_interval_s=interval,
                         stable_timeout_s=timeout)
    with MotoServer(images=list(images)) as server, tempfile.TemporaryDirectory() as work:
        rehearsal = EcsRollbackRehearsal(server, spec, Path(work), journal)
        rehearsal.start(good)
        rehearsal.deploy(bad)
        rehearsal.expect_deploy_failing()
        rehearsal.leave_rollback_state()
        rehearsal.roll_back_and_wait(timeout)
        rehearsal.verify(good)
    for m in journal.loose.measurements:
        click.echo(f"{m.name:40} {m.value:8.2f} {m.unit:2} {m.fidelity.value}")


@aws.command("check-state")
@click.argument("path", type=click.Path(path_type=Path), default=Path(".rollback_state"))
@one_line_errors
def check_state_command(path: Path) -> None:
    """Validate a .rollback_state file (fields, PREV_TASK registered) against the AWS in the
    environment (AWS_ENDPOINT_URL for moto, or your account: read-only calls)."""
    import boto3
    from botocore.exceptions import BotoCoreError

    from gameday.procedures.ecs_rollback import check_fields, check_prev_task

    state = check_fields(path)
    try:
        ecs = boto3.client("ecs")
    except BotoCoreError as exc:
        raise GameDayError(f"cannot make an ECS client: {exc}", fix="set AWS_DEFAULT_REGION (and AWS_ENDPOINT_URL for a local moto)") from None
    check_prev_task(state, ecs)
    click.echo(f"{path}: DEPLOYMENT_ID={state.deployment_id} PREV_TASK={state.prev_task} PREV_SHA={state.prev_sha}"
               f" BACKUP_FILE={state.backup_file or '(none)'}: valid")
