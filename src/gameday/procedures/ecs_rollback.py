"""ECS rollback, as the staging checklist runs it, rehearsed against real task processes.

The pipeline that deployed a release leaves ``.rollback_state`` (shell ``KEY=value``
lines: DEPLOYMENT_ID, PREV_TASK, PREV_SHA, BACKUP_FILE).  The on-call engineer sources
it, runs ``aws ecs update-service --task-definition $PREV_TASK --force-new-deployment``
and ``aws ecs wait services-stable``.  This module does the same through boto3 and then
proves the effect: the service and its single deployment run PREV_TASK, and every task
answers real HTTP requests with the previous version.

Fidelity: register/create/update calls are API state (moto: SIMULATED).  Stability is
reached only when the task runner's processes pass their health checks, so
time-to-stable and the served-version checks are REAL when the tasks are local
processes (:class:`~gameday.aws.moto_server.MotoServer`) or real AWS.

Timing: every "time to" figure runs from the moment the API call was issued to the
event itself, as the task runner recorded it on the tasks (a task healthy when its
health check passed, stopped when its last process exited, failed when it crashed or
failed its checks; see :func:`gameday.aws.ecs.task_times`), not to the poll that
noticed it.  The poll (``services-stable``, failedTasks) still gives the verdict.  Its
detail names the cadences that shape the path itself: the runner's reconcile tick and
the health-check interval, as ECS's scheduler and agent have theirs.  Where the tasks
carry no such instants (real ECS), the figure falls back to the poll and says so.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from gameday.aws import ecs as ecs_api
from gameday.aws.target import REHEARSAL_TAG, TargetRef, ecs_tags, require_rehearsal
from gameday.errors import ConfigError, GameDayError, RehearsalFailed
from gameday.journal import Fidelity, Journal

if TYPE_CHECKING:
    from gameday.rehearsals.ecs_traffic import EcsTraffic

STATE_FIELDS = ("DEPLOYMENT_ID", "PREV_TASK", "PREV_SHA", "BACKUP_FILE")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
STABLE_POLL_S = 0.1  # services-stable polling for the verdict (the AWS CLI polls every 15 s)
FAILED_POLL_S = 0.5  # failedTasks polling for the bad deploy's verdict


# -- the rollback state file ------------------------------------------------------------
@dataclass(frozen=True)
class RollbackState:
    deployment_id: str
    prev_task: str
    prev_sha: str
    backup_file: str
    path: Path


def write_rollback_state(path: Path, *, deployment_id: str, prev_task: str, prev_sha: str, backup_file: str = "") -> Path:
    """Write ``.rollback_state`` as a deploy pipeline leaves it (sourceable shell)."""
    values = {"DEPLOYMENT_ID": deployment_id, "PREV_TASK": prev_task, "PREV_SHA": prev_sha, "BACKUP_FILE": backup_file}
    path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
    return path


def parse_rollback_state(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``export``, quotes and comments allowed), as ``source`` reads them."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RehearsalFailed(f"rollback state file {path} does not exist", fix="the deploy pipeline must leave it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RehearsalFailed(f"rollback state file {path} is not readable: {exc.__class__.__name__}",
                              fix="check its permissions and encoding") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            raise RehearsalFailed(f"{path}:{number} is not a shell assignment", fix="write KEY=value lines") from None
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            key, sep, value = word.partition("=")
            if not sep:
                raise RehearsalFailed(f"{path}:{number}: {word!r} is not KEY=value", fix="write KEY=value lines")
            values[key] = value
    return values


def read_rollback_state(path: Path, ecs: Any) -> RollbackState:
    """Checklist step 3: the file exists, is readable, has every field, and PREV_TASK is real."""
    state = check_fields(path)
    check_prev_task(state, ecs)
    return state


def check_fields(path: Path) -> RollbackState:
    """The state file's own checks: readable, every field present, PREV_SHA a commit hash."""
    values = parse_rollback_state(path)
    for name in STATE_FIELDS:
        if name not in values:
            raise RehearsalFailed(f"rollback state file {path} has no {name}", fix=f"the pipeline must write {name}=...")
        if not values[name] and name != "BACKUP_FILE":  # BACKUP_FILE is empty when no backup was taken
            raise RehearsalFailed(f"rollback state file {path}: {name} is empty", fix=f"the pipeline must set {name}")
    state = RollbackState(values["DEPLOYMENT_ID"], values["PREV_TASK"], values["PREV_SHA"], values["BACKUP_FILE"], path)
    if not _SHA.match(state.prev_sha):
        raise RehearsalFailed(f"PREV_SHA={state.prev_sha!r} in {path} is not a git SHA", fix="write the full or short commit hash")
    if state.backup_file and not Path(state.backup_file).exists():
        raise RehearsalFailed(f"BACKUP_FILE={state.backup_file} in {path} does not exist", fix="point it at the backup taken before the deploy")
    return state


def check_prev_task(state: RollbackState, ecs: Any) -> None:
    """PREV_TASK is a registered task definition built from PREV_SHA (when it says so)."""
    try:
        definition = ecs.describe_task_definition(taskDefinition=state.prev_task, include=["TAGS"])
    except ClientError:
        raise RehearsalFailed(f"PREV_TASK={state.prev_task} in {state.path} is not a registered task definition",
                              fix="the pipeline must record the task definition that ran before the deploy") from None
    except BotoCoreError as exc:
        raise GameDayError(f"cannot reach ECS to check PREV_TASK: {exc}",
                           fix="set AWS_DEFAULT_REGION and credentials, or AWS_ENDPOINT_URL for a local moto") from None
    tags = {t["key"]: t["value"] for t in definition.get("tags") or []}
    if tags.get("git-sha") and not tags["git-sha"].startswith(state.prev_sha):
        raise RehearsalFailed(f"PREV_SHA={state.prev_sha} does not match PREV_TASK {state.prev_task} (built from {tags['git-sha']})",
                              fix="PREV_SHA must be the known-good commit PREV_TASK was built from")


# -- the rehearsal ---------------------------------------------------------------------------
@dataclass
class EcsService:
    """What the rehearsal deploys: one service of ``tasks`` tasks of ``repository:<version>``."""

    name: str = "orders"
    cluster: str = "gameday"
    family: str = ""  # task definition family; defaults to the service name
    repository: str = ""  # the image repository (in the image catalog); see of()
    tasks: int = 3
    container_port: int = 8080
    health_interval_s: int = 5
    health_retries: int = 2
    stable_timeout_s: float = 120.0
    environment: tuple[tuple[str, str], ...] = ()
    release_reader: Any = None  # gameday.load.ReleaseReader: how a response names its release
    version_path: str = "/version"
    load: Any = None  # gameday.load.LoadProfile: the service's own load, for a rollback under load

    @classmethod
    def of(cls, service: Any, **overrides: Any) -> EcsService:
        """The ECS twin of a project-file service: its image repository, port, release header or field."""
        from gameday.manifests import Manifests

        manifests = Manifests.load(service)
        port = manifests.target_port if isinstance(manifests.target_port, int) else cls.container_port
        fields: dict[str, Any] = {"repository": manifests.repository, "container_port": port,
                                  "release_reader": service.release, "load": service.load,
                                  "version_path": service.endpoints.version or service.endpoints.health or "/"}
        return cls(**{**fields, **overrides})

    def release(self, version: str) -> ecs_api.Release:
        if not self.repository:
            raise ConfigError("the ECS service has no image repository",
                              fix="build it with EcsService.of(project.service(...)) or pass repository=")
        return ecs_api.Release(
            family=self.family or self.name, repository=self.repository, version=version, container_port=self.container_port,
            health_interval_s=self.health_interval_s, health_retries=self.health_retries,
            git_sha=fake_sha(version), environment=self.environment,
        )


def fake_sha(version: str) -> str:
    """A stable stand-in commit hash per release (rehearsals have no real build)."""
    import hashlib

    return hashlib.sha1(version.encode()).hexdigest()


@dataclass
class RollbackResult:
    time_to_stable_s: float  # update-service to the event that made the service stable
    prev_task: str
    version: str
    served: dict[str, str] = field(default_factory=dict)  # task address -> version that answered
    verdict_s: float | None = None  # update-service to the services-stable poll that saw it


LIVE_POLL_S = 0.2  # how often a live game day reads the service for the people's change


@dataclass(frozen=True)
class Timing:
    """A "time to" figure and what its journal detail says it is measured from and to."""

    seconds: float
    detail: str


class EcsRollbackRehearsal:
    """Each method is one checklist step; the BDD steps call them one by one."""

    def __init__(self, aws: Any, service: EcsService, workdir: Path, journal: Journal | None = None) -> None:
        self.aws = aws
        self.spec = service
        self.workdir = workdir
        self.journal = journal or Journal()
        self.ecs = aws.client("ecs")
        self.versions: dict[str, str] = {}  # version -> task definition ARN
        self.current: str | None = None  # ARN the service ran before the last deploy
        self.previous: str | None = None
        self.created_at: float | None = None  # wall clock: create-service was issued
        self.deployed_at: float | None = None  # wall clock: the last deploy's update-service was issued
        self.state_path = workdir / ".rollback_state"
        self.rolled_back_to: RollbackState | None = None
        self.rollback_issued: float | None = None  # wall clock: the rollback's update-service was issued
        self.failing_seen: float | None = None  # wall clock: the bad deployment's failure was seen
        self.live = False  # a live game day: the people roll back, gameday watches (see _people_roll_back)
        self.traffic: EcsTraffic | None = None  # the service's load through a load balancer (start_traffic)

    # Given ---------------------------------------------------------------------
    def start(self, version: str, tasks: int | None = None, name: str | None = None) -> str:
        """Create the cluster and the service on ``version`` and wait until it is stable."""
        if tasks is not None:
            self.spec.tasks = tasks
        if name is not None:
            self.spec.name = name
        cluster_arn = ecs_api.ensure_cluster(self.ecs, self.spec.cluster)
        arn = self.register(version)
        self._guard(cluster_arn)
        self.created_at = issued = time.time()
        self.ecs.create_service(
            cluster=self.spec.cluster, serviceName=self.spec.name, taskDefinition=arn, desiredCount=self.spec.tasks,
            tags=[{"key": REHEARSAL_TAG, "value": "true"}],
        )
        self.journal.event("ecs.service", f"service {self.spec.name} created on {version}", fidelity=Fidelity.SIMULATED.value)
        took = ecs_api.wait_stable(self.ecs, self.spec.cluster, self.spec.name, self.spec.stable_timeout_s,
                                   delay=STABLE_POLL_S)
        if took is None:
            raise RehearsalFailed(f"service {self.spec.name} on {version} never became stable: {self._why()}",
                                  fix="release the known-good version first")
        timing = self._time_to_stable("create-service", issued, arn, time.time() - issued)
        self.journal.measure("ecs.initial_deploy_to_stable", timing.seconds, "s", fidelity=Fidelity.REAL,
                             detail=f"{timing.detail}; {self.spec.tasks} tasks of {version}, real processes")
        self.current = arn
        return arn

    def start_traffic(self, users: int | None = None) -> EcsTraffic:
        """The service's own load through a load balancer in front of its healthy tasks, a clean baseline first."""
        from gameday.rehearsals.ecs_traffic import EcsTraffic

        if self.current is None:
            raise RehearsalFailed("no service is running yet", fix="start the ECS service before the traffic")
        self.traffic = EcsTraffic(self.ecs, self.spec.cluster, self.spec.name, journal=self.journal,
                                  workdir=self.workdir / "load")
        self.traffic.roll_back_to_previous = self.roll_back_to_previous
        self.traffic.start(self.spec.load, users=users, tasks=self.spec.tasks,
                           stable=ecs_api.image_version(self.ecs, self.current))
        return self.traffic

    def roll_back_to_previous(self) -> RollbackState:
        """What ECS's own automatic rollback does: update-service back to the previous task definition."""
        if self.previous is None:
            raise RehearsalFailed("no previous task definition: deploy a release first")
        prev = self.previous.rsplit("/", 1)[-1]
        _, service = self._issue_rollback(self.previous, f"automatic: ecs update-service --cluster {self.spec.cluster} "
                                                         f"--service {self.spec.name} --task-definition {prev}")
        self.rolled_back_to = RollbackState(deployment_id=service["deployments"][0].get("id", ""), prev_task=prev,
                                            prev_sha="", backup_file="", path=self.state_path)
        return self.rolled_back_to

    def require_traffic(self) -> EcsTraffic:
        if self.traffic is None:
            raise ConfigError("no traffic runs through a load balancer in this scenario",
                              fix="add 'steady traffic from N users through a load balancer in front of its tasks'")
        return self.traffic

    def stop(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()

    def _mark(self, name: str, at: float) -> None:
        if self.traffic is not None:
            self.traffic.timeline.mark(name, at)

    def register(self, version: str) -> str:
        arn = ecs_api.register(self.ecs, self.spec.release(version))
        self.versions[version] = arn
        self.journal.event("ecs.register", f"task definition {arn.rsplit('/', 1)[-1]} registered for {version}",
                           fidelity=Fidelity.SIMULATED.value)
        return arn

    # When a bad release ships --------------------------------------------------
    def deploy(self, version: str) -> str:
        arn = self.versions.get(version) or self.register(version)
        issued, started = time.time(), time.monotonic()
        self.ecs.update_service(cluster=self.spec.cluster, service=self.spec.name, taskDefinition=arn)
        self.journal.measure("ecs.update_service_accepted", time.monotonic() - started, "s", fidelity=Fidelity.SIMULATED,
                             detail="API acceptance only (moto)")
        self.previous, self.current, self.deployed_at = self.current, arn, issued
        self._mark("t0", issued)  # users meet the release as soon as its tasks are healthy
        self.journal.event("ecs.deploy", f"release {version} deployed", task_definition=arn,
                           fidelity=Fidelity.SIMULATED.value)
        return arn

    def expect_deploy_failing(self, timeout: float | None = None) -> float:
        """Wait until the new deployment has failed tasks (crash or failed health checks)."""
        if self.deployed_at is None:
            raise RehearsalFailed("no release was deployed", fix="deploy a release first")
        limit = timeout or self.spec.stable_timeout_s
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            primary = ecs_api.describe_service(self.ecs, self.spec.cluster, self.spec.name)["deployments"][0]
            if primary.get("failedTasks", 0) > 0:
                self.failing_seen = time.time()
                timing = self._time_to_failure(primary["id"], self.failing_seen - self.deployed_at)
                self.journal.measure("ecs.bad_deploy_detected", timing.seconds, "s", fidelity=Fidelity.REAL,
                                     detail=timing.detail)
                return timing.seconds
            if primary.get("rolloutState") == "COMPLETED":
                raise RehearsalFailed("the release meant to be bad became stable: nothing to roll back from",
                                      fix="deploy a broken release (e.g. 2.0.0-crash or 2.0.0-unready)")
            time.sleep(FAILED_POLL_S)
        raise RehearsalFailed(f"the new deployment had no failed task after {limit:g}s: {self._why()}")

    def leave_rollback_state(self, backup_file: str = "") -> Path:
        """What the deploy pipeline writes before switching task definitions."""
        if self.previous is None:
            raise RehearsalFailed("no previous task definition: deploy a release first")
        service = ecs_api.describe_service(self.ecs, self.spec.cluster, self.spec.name)
        version = ecs_api.image_version(self.ecs, self.previous)
        return write_rollback_state(self.state_path, deployment_id=service["deployments"][0]["id"],
                                    prev_task=self.previous.rsplit("/", 1)[-1], prev_sha=fake_sha(version)[:12],
                                    backup_file=backup_file)

    # When the on-call engineer rolls back ------------------------------------------
    def roll_back(self) -> RollbackState:
        """Checklist step 7: source the state file, update-service to PREV_TASK, forced."""
        if self.live:
            return self._people_roll_back()
        state = read_rollback_state(self.state_path, self.ecs)
        self.journal.event("ecs.rollback_state", f"rollback state valid: PREV_TASK={state.prev_task}",
                           deployment_id=state.deployment_id, prev_sha=state.prev_sha)
        accepted, _ = self._issue_rollback(state.prev_task, f"aws ecs update-service --cluster {self.spec.cluster} "
                                           f"--service {self.spec.name} --task-definition {state.prev_task} "
                                           "--force-new-deployment", forceNewDeployment=True)
        self.journal.measure("ecs.rollback_update_service_accepted", accepted, "s",
                             fidelity=Fidelity.SIMULATED, detail="API acceptance only (moto)")
        self.rolled_back_to = state
        return state

    def _issue_rollback(self, task_definition: str, command: str, **options: Any) -> tuple[float, dict[str, Any]]:
        """The rollback's update-service, on a rehearsal target only, stamped as the act ("acted"); the API's
        acceptance time and the service as it was just before."""
        self.journal.event("ecs.rollback", command, fidelity=Fidelity.SIMULATED.value)
        service = ecs_api.describe_service(self.ecs, self.spec.cluster, self.spec.name)
        self._guard(service["clusterArn"])
        self.rollback_issued, started = time.time(), time.monotonic()
        self._mark("acted", self.rollback_issued)
        self.ecs.update_service(cluster=self.spec.cluster, service=self.spec.name, taskDefinition=task_definition,
                                **options)
        return time.monotonic() - started, service

    def _people_roll_back(self) -> RollbackState:
        """A live game day: the people roll the service back however they choose (the aws CLI with the
        state file, a script, a pipeline); gameday does not act.  Their change is the service's task
        definition moving off the bad one, stamped with the new deployment's createdAt (the API's own
        clock); decide is the failure seen to that moment, the humans' time."""
        from gameday import settings
        from gameday.rehearsals.live import say_to_people, wait_for_people

        if self.current is None:
            raise RehearsalFailed("no release was deployed", fix="deploy a release first")
        endpoint = self.aws.env().get("AWS_ENDPOINT_URL", "your AWS account") if hasattr(self.aws, "env") else "AWS"
        scripted = (f"source {self.state_path} && aws ecs update-service --cluster {self.spec.cluster} --service "
                    f"{self.spec.name} --task-definition $PREV_TASK --force-new-deployment")
        say_to_people(f"LIVE: the incident is yours. export AWS_ENDPOINT_URL={endpoint}  (ECS service {self.spec.name} "
                      f"in cluster {self.spec.cluster}; the pipeline's rollback state: {self.state_path}; any "
                      f"credentials). gameday will not act; roll back however your runbook says. Giving up after "
                      f"{settings.get_float('live-give-up'):g} s.")

        def moved() -> dict[str, Any] | None:
            service = ecs_api.describe_service(self.ecs, self.spec.cluster, self.spec.name)
            return service if service["taskDefinition"] != self.current else None

        service = wait_for_people(moved, scripted=scripted, say=say_to_people, journal=self.journal, poll=LIVE_POLL_S)
        primary = next((d for d in service["deployments"] if d.get("status") == "PRIMARY"), service["deployments"][0])
        created = primary.get("createdAt")
        acted = created.timestamp() if hasattr(created, "timestamp") else time.time()
        to = service["taskDefinition"].rsplit("/", 1)[-1]
        say_to_people(f"ACTED: the service's task definition is now {to}")
        self.journal.event("live-action", f"the people changed service/{self.spec.name}: task definition "
                           f"{self.current.rsplit('/', 1)[-1]} -> {to}", at=acted, fidelity=Fidelity.SIMULATED.value)
        if self.failing_seen is not None:
            self.journal.measure("ecs.time_to_decide", max(0.0, acted - self.failing_seen), "s", fidelity=Fidelity.REAL,
                                 detail="the people on call (live): the failing deployment seen to their update-service, "
                                        "stamped with the deployment's createdAt")
        self.rollback_issued = acted
        self._mark("acted", acted)
        self.rolled_back_to = RollbackState(deployment_id=primary.get("id", ""), prev_task=to, prev_sha="",
                                            backup_file="", path=self.state_path)
        return self.rolled_back_to

    def require_stable_within(self, seconds: float | None = None) -> RollbackResult:
        """``aws ecs wait services-stable`` bounded by ``seconds`` gives the verdict; time-to-stable
        runs from the update to the event that made the service stable."""
        if self.rolled_back_to is None or self.rollback_issued is None:
            raise RehearsalFailed("no rollback was issued", fix="roll back first")
        state, limit = self.rolled_back_to, seconds or self.spec.stable_timeout_s
        took = ecs_api.wait_stable(self.ecs, self.spec.cluster, self.spec.name, limit, delay=STABLE_POLL_S)
        if took is None:
            self.journal.measure("ecs.rollback_time_to_stable", limit, "s", fidelity=Fidelity.REAL, target=seconds,
                                 detail="not stable before the timeout")
            raise RehearsalFailed(f"service {self.spec.name} not stable {limit:g}s after rolling back to {state.prev_task}: {self._why()}",
                                  fix="PREV_TASK must be a release that passes its health checks")
        verdict = time.time() - self.rollback_issued
        target_arn = ecs_api.task_definition_arn(self.ecs, state.prev_task) or state.prev_task
        timing = self._time_to_stable("update-service", self.rollback_issued, target_arn, verdict)
        self._mark("done", self.rollback_issued + timing.seconds)
        self.journal.measure("ecs.rollback_time_to_stable", timing.seconds, "s", fidelity=Fidelity.REAL, target=seconds,
                             detail=f"{timing.detail}; tasks are real processes")
        return RollbackResult(timing.seconds, state.prev_task, ecs_api.image_version(self.ecs, state.prev_task),
                              verdict_s=verdict)

    # -- timing from the tasks' events ---------------------------------------------------
    def _time_to_stable(self, call: str, issued: float, task_definition: str, verdict: float) -> Timing:
        """``call`` (issued at wall-clock ``issued``) to the event that made the service stable on
        ``task_definition``; ``verdict`` is when services-stable saw it, the fallback without events."""
        name = task_definition.rsplit("/", 1)[-1]
        moment = ecs_api.stable_moment(ecs_api.task_times(self.ecs, self.spec.cluster, self.spec.name), issued,
                                       task_definition)
        if moment is None:
            return Timing(verdict, f"{call} to services-stable, polled every {STABLE_POLL_S:g} s (the moment lies "
                                   f"within {STABLE_POLL_S:g} s before the figure; the tasks carry no event times)")
        if moment.last == "stopped":
            last, event = "the last old task stopped", "a task stops when its last process exits"
        else:
            last, event = f"the last task of {name} healthy", "a task is healthy when its health check passes"
        return Timing(moment.at - issued,
                      f"from {call} to {last} (event times from the task runner; {event}); "
                      f"{self._cadences(moment.reconcile_tick, task_definition)}; services-stable, polled every "
                      f"{STABLE_POLL_S:g} s, gave the verdict at {verdict:.2f} s")

    def _time_to_failure(self, deployment_id: str, verdict: float) -> Timing:
        """The deploy's update-service to its first failed task, from the task's event."""
        assert self.deployed_at is not None
        times = ecs_api.task_times(self.ecs, self.spec.cluster, self.spec.name)
        first = ecs_api.first_failure(times, deployment_id)
        if first is None:
            return Timing(verdict, f"update-service to failedTasks > 0, polled every {FAILED_POLL_S:g} s (the moment "
                                   f"lies within {FAILED_POLL_S:g} s before the figure; the tasks carry no event times)")
        health = "health checks" in first.stopped_reason
        cadences = self._cadences(first.reconcile_tick, first.task_definition if health else None)
        return Timing((first.failed or 0.0) - self.deployed_at,
                      f"from update-service to the first task of the new deployment failing ({first.stopped_reason}; "
                      f"event time from the task runner); {cadences}; failedTasks, polled every {FAILED_POLL_S:g} s, "
                      f"gave the verdict at {verdict:.2f} s; tasks are real processes")

    def _cadences(self, tick: float | None, task_definition: str | None) -> str:
        """The bound of the cadences on the path: the runner's tick and the health-check interval."""
        parts = [f"the runner's {tick:g} s reconcile tick" if tick is not None else "the runner's reconcile tick"]
        interval = ecs_api.health_check_interval(self.ecs, task_definition) if task_definition else None
        if interval is not None:
            parts.append(f"a {interval:g} s health-check interval")
        return f"the path includes {' and '.join(parts)}, as on ECS"

    def roll_back_and_wait(self, timeout: float | None = None) -> RollbackResult:
        self.roll_back()
        return self.require_stable_within(timeout)

    def require_not_stable_for(self, seconds: float) -> None:
        """The bad release must not reach services-stable on its own (else nothing to roll back)."""
        if ecs_api.wait_stable(self.ecs, self.spec.cluster, self.spec.name, seconds) is not None:
            raise RehearsalFailed(f"service {self.spec.name} became stable on the release meant to be bad")

    def require_running(self, version: str) -> None:
        """The service still points at ``version`` (e.g. after a refused rollback)."""
        running = ecs_api.image_version(self.ecs, ecs_api.describe_service(self.ecs, self.spec.cluster, self.spec.name)["taskDefinition"])
        if running != version:
            raise RehearsalFailed(f"service {self.spec.name} runs {running}, expected {version}")

    def break_rollback_state(self, field_name: str) -> None:
        """Drop one field from the state file, as a half-finished pipeline would."""
        lines = self.state_path.read_text().splitlines()
        self.state_path.write_text("".join(f"{line}\n" for line in lines if not line.startswith(f"{field_name}=")))

    def require_rollback_refused(self, naming: str) -> None:
        try:
            self.roll_back()
        except RehearsalFailed as exc:
            if naming not in exc.one_line():
                raise RehearsalFailed(f"the rollback was refused, but not for {naming}: {exc.one_line()}") from None
            self.journal.event("ecs.rollback_refused", exc.one_line())
            return
        raise RehearsalFailed(f"the rollback went ahead although the state file is broken ({naming})")

    # Then ---------------------------------------------------------------------------
    def verify(self, version: str | None = None, requests_per_task: int = 3) -> dict[str, str]:
        """The service, its only deployment and every task's answers are on the previous release."""
        self.verify_service()
        return self.verify_traffic(version, requests_per_task)

    def verify_service(self) -> str:
        """Service and its single deployment point at PREV_TASK (API state); returns its ARN."""
        state = read_rollback_state(self.state_path, self.ecs)
        expected_arn = ecs_api.task_definition_arn(self.ecs, state.prev_task)
        service = ecs_api.describe_service(self.ecs, self.spec.cluster, self.spec.name)
        deployments = service["deployments"]
        if service["taskDefinition"] != expected_arn:
            raise RehearsalFailed(f"service {self.spec.name} runs {service['taskDefinition'].rsplit('/', 1)[-1]}, not PREV_TASK {state.prev_task}")
        if len(deployments) != 1 or deployments[0]["taskDefinition"] != expected_arn:
            found = ", ".join(f"{d['status']} {d['taskDefinition'].rsplit('/', 1)[-1]}" for d in deployments)
            raise RehearsalFailed(f"service {self.spec.name} should have one deployment on {state.prev_task}; found {found}")
        self.journal.event("ecs.verified_service", f"service {self.spec.name} and its only deployment run {state.prev_task}",
                           fidelity=Fidelity.SIMULATED.value)
        return str(expected_arn)

    def verify_traffic(self, version: str | None = None, requests_per_task: int = 3) -> dict[str, str]:
        """Real HTTP to every running task: each must answer with the previous version."""
        state = read_rollback_state(self.state_path, self.ecs)
        expected = version or ecs_api.image_version(self.ecs, state.prev_task)
        served = self._served_versions(requests_per_task)
        wrong = {address: v for address, v in served.items() if v != expected}
        share = 100.0 * (len(served) - len(wrong)) / len(served) if served else 0.0
        self.journal.measure("ecs.tasks_serving_previous_version", share, "%", fidelity=Fidelity.REAL, target=100.0,
                             bound="min", detail=f"{len(served)} tasks x {requests_per_task} GET /version")
        if len(served) != self.spec.tasks:
            raise RehearsalFailed(f"{len(served)} tasks answer, expected {self.spec.tasks}")
        if wrong:
            listed = ", ".join(f"{a} served {v}" for a, v in sorted(wrong.items()))
            raise RehearsalFailed(f"rollback reported stable but not every task serves {expected}: {listed}")
        self.journal.event("ecs.verified_traffic", f"{len(served)} tasks of {self.spec.name} serve {expected}")
        return served

    def _served_versions(self, requests_per_task: int) -> dict[str, str]:
        served: dict[str, str] = {}
        for task in ecs_api.running_tasks(self.ecs, self.spec.cluster, self.spec.name):
            if task.address is None:
                raise RehearsalFailed(f"task {task.arn.rsplit('/', 1)[-1]} has no network binding to send traffic to")
            if not ecs_api.is_loopback(task.address):
                raise GameDayError(f"task {task.arn.rsplit('/', 1)[-1]} listens on {task.address}, not on 127.0.0.0/8: "
                                   "gameday sends no traffic there", fix="open a local tunnel to the tasks, or verify the API state only")
            answers = {ecs_api.served_version(task.address, self.spec.version_path, reader=self.spec.release_reader)
                       for _ in range(requests_per_task)}
            served[task.address] = answers.pop() if len(answers) == 1 else "mixed:" + ",".join(sorted(answers))
        return served

    def _guard(self, cluster_arn: str) -> None:
        service_arn = f"{cluster_arn.replace(':cluster/', ':service/')}/{self.spec.name}"
        require_rehearsal(self.aws, TargetRef("ECS cluster", self.spec.cluster, cluster_arn),
                          TargetRef("ECS service", self.spec.name, service_arn), tags_of=ecs_tags(self.ecs))

    def _why(self) -> str:
        """One line on why a service is not stable: deployments, failures, last event."""
        try:
            service = ecs_api.describe_service(self.ecs, self.spec.cluster, self.spec.name)
        except Exception as exc:  # noqa: BLE001
            return str(exc)
        parts = [f"{d['status']} {d['taskDefinition'].rsplit('/', 1)[-1]} running {d['runningCount']}/{d['desiredCount']}"
                 f" failed {d.get('failedTasks', 0)}" for d in service["deployments"]]
        events = [e["message"] for e in service.get("events", []) if "stopped" in e["message"]][:1]
        return "; ".join(parts + events)
