"""ECS rollback to stable for a 3-task service: update-service --force-new-deployment -> services-stable.

    python benchmarks/ecs_rollback.py [--tasks 3] [--runs 3] [--interval 5] [--bad 2.0.0-crash]

Each run deploys the demo service's release 1.0.0, then a broken release, then rolls
back as the staging checklist does, and prints the seconds from the rollback's
update-service to the service's stable moment, taken from the task runner's event times
(the last task of the previous release healthy, the last old task stopped); the boto3
services-stable waiter gives the verdict.  Tasks are real
`python -m gameday.demo` processes behind moto's ECS API with real health checks every
--interval seconds (ECS minimum 5), so the figure is dominated by process start plus the
first health check.  For comparison it also shows moto alone (no task runner): the
waiter never succeeds there, so its "time" is only the bound.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gameday import project
from gameday.aws import ecs as ecs_api
from gameday.aws.moto_server import MotoServer
from gameday.errors import GameDayError
from gameday.journal import Journal
from gameday.procedures.ecs_rollback import EcsRollbackRehearsal, EcsService


def one_run(aws: MotoServer, run: int, args: argparse.Namespace) -> tuple[float, float]:
    spec = EcsService.of(project.load().service(), cluster=f"bench-{run}", family=f"orders-bench-{run}",
                         tasks=args.tasks, health_interval_s=args.interval, health_retries=2, stable_timeout_s=120)
    with tempfile.TemporaryDirectory() as work:
        rehearsal = EcsRollbackRehearsal(aws, spec, Path(work), Journal())
        started = time.monotonic()
        rehearsal.start("1.0.0")
        initial = time.monotonic() - started
        rehearsal.deploy(args.bad)
        rehearsal.expect_deploy_failing()
        rehearsal.leave_rollback_state()
        result = rehearsal.roll_back_and_wait()
        rehearsal.verify("1.0.0")
        aws.client("ecs").delete_service(cluster=spec.cluster, service=spec.name, force=True)
    return initial, result.time_to_stable_s


def moto_alone(args: argparse.Namespace, bound: float) -> bool:
    """The same rollback on moto without the task runner: does services-stable ever pass?"""
    with MotoServer(run_tasks=False) as aws:
        ecs = aws.client("ecs")
        spec = EcsService.of(project.load().service(), cluster="alone", tasks=args.tasks)
        ecs_api.ensure_cluster(ecs, spec.cluster)
        good = ecs_api.register(ecs, spec.release("1.0.0"))
        bad = ecs_api.register(ecs, spec.release(args.bad))
        ecs.create_service(cluster=spec.cluster, serviceName=spec.name, taskDefinition=good, desiredCount=args.tasks)
        ecs.update_service(cluster=spec.cluster, service=spec.name, taskDefinition=bad)
        ecs.update_service(cluster=spec.cluster, service=spec.name, taskDefinition=good, forceNewDeployment=True)
        return ecs_api.wait_stable(ecs, spec.cluster, spec.name, bound) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=int, default=5, help="health check interval, seconds")
    parser.add_argument("--bad", default="2.0.0-crash", help="the broken release (a tag of gameday/demo)")
    args = parser.parse_args()
    try:
        with MotoServer() as aws:
            figures = [one_run(aws, run, args) for run in range(args.runs)]
        stable_alone = moto_alone(args, bound=10)
    except GameDayError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    initial = [f[0] for f in figures]
    rollback = [f[1] for f in figures]
    print(f"ECS rollback, {args.tasks} tasks, health check every {args.interval:g} s, bad release {args.bad}")
    print("  initial deploy to stable : " + ", ".join(f"{s:.2f}" for s in initial) + f" s (median {statistics.median(initial):.2f} s)")
    print("  rollback to stable       : " + ", ".join(f"{s:.2f}" for s in rollback) + f" s (median {statistics.median(rollback):.2f} s)")
    print(f"  rollback / health interval: {statistics.median(rollback) / args.interval:.2f}")
    print(f"  moto alone (no task runner): services-stable {'reached (unexpected)' if stable_alone else 'not reached in 10 s'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
