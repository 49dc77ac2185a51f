"""The ECS service scheduler moto lacks: real task processes behind moto's API.

moto keeps ECS API state only: ``update-service --force-new-deployment`` changes the
service's task definition but leaves one deployment on the old definition with
runningCount 0, so ``aws ecs wait services-stable`` never succeeds.  The task runner
lives in the same process as moto (see :mod:`gameday.aws.host`), owns each service's
deployments and tasks, and writes moto's objects so the API tells the truth:

* a new task definition or a forced deployment makes a new PRIMARY deployment; the
  previous one turns ACTIVE and drains as the new tasks become healthy (a rolling
  update with minimumHealthyPercent 100, maximumPercent 200, the ECS defaults);
* every task is local processes (:class:`~gameday.aws.task_process.TaskProcess`) whose
  health checks run for real; runningCount counts tasks that are RUNNING and healthy
  (or RUNNING without a health check), pendingCount the ones still starting;
* rolloutState turns COMPLETED only when the primary has desiredCount serving tasks and
  no other deployment is left, which is exactly when ``services-stable`` succeeds;
* failed tasks (exit, failed health checks, unknown image) count in failedTasks and are
  replaced with a back-off, so a broken release never becomes stable.

Each task's instants are the events themselves (:class:`~gameday.aws.task_process.TaskEvents`,
wall clock), published with the task: ``startedAt``, ``stoppingAt`` and ``stoppedAt`` (the
last process's exit) as ECS has them, and as task attributes what ECS does not publish:
``gameday.healthyAt`` (the probe that made the task HEALTHY finished), ``gameday.failedAt``
(it failed on its own) and ``gameday.reconcileTick`` (this runner's tick, seconds).  A
finished probe or an exited process wakes the runner at once, and it also wakes when a
health check falls due, so probes keep their own interval and a result is read when it
arrives, not a tick later; a task that changed brings the reconcile forward.  The tick
paces the rest (launching tasks after an update, replacements), as ECS's scheduler does.

Still simulated (API state only): load balancers and target groups, ENIs and VPC
networking, IAM roles, capacity providers and the placement of tasks on instances,
the deployment circuit breaker, CloudWatch logs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gameday.aws.ecs import FAILED_AT, HEALTHY_AT, RECONCILE_TICK
from gameday.aws.task_process import AddressPool, TaskProcess
from gameday.images import ImageCatalog

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
KEEP_STOPPED_TASKS = 100  # per cluster; ECS forgets stopped tasks after about an hour


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _attribute(name: str, epoch: float | None) -> list[dict[str, str]]:
    return [{"name": name, "value": f"{epoch:.6f}"}] if epoch is not None else []


@dataclass
class Deployment:
    id: str
    task_definition_arn: str
    desired: int
    status: str = "PRIMARY"
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    rollout_state: str = "IN_PROGRESS"
    failed_tasks: int = 0
    tasks: dict[str, TaskProcess] = field(default_factory=dict)  # task ARN -> processes
    next_launch: float = 0.0

    def live(self) -> list[TaskProcess]:
        return [t for t in self.tasks.values() if t.live]

    def serving(self) -> list[TaskProcess]:
        return [t for t in self.tasks.values() if t.serving]

    def to_api(self, launch_type: str | None, network: Any) -> dict[str, Any]:
        running = len(self.serving())
        reason = {
            "COMPLETED": f"ECS deployment {self.id} completed.",
            "IN_PROGRESS": f"ECS deployment {self.id} in progress.",
        }[self.rollout_state]
        return {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition_arn,
            "desiredCount": self.desired if self.status == "PRIMARY" else 0,
            "runningCount": running,
            "pendingCount": len(self.live()) - running,
            "failedTasks": self.failed_tasks,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "launchType": launch_type,
            "platformFamily": "EC2" if launch_type == "EC2" else "FARGATE",
            "networkConfiguration": network or None,
            "rolloutState": self.rollout_state,
            "rolloutStateReason": reason,
        }


@dataclass
class ServiceState:
    key: tuple[str, str, str]  # account, region, cluster:service
    deployments: list[Deployment] = field(default_factory=list)

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]


class TaskRunner:
    """Reconciles every ECS service in the in-process moto backends every ``interval`` s."""

    def __init__(
        self,
        catalog: ImageCatalog,
        log_dir: Path,
        backends: Callable[[], Iterator[Any]],
        *,
        interval: float = 0.5,
    ) -> None:
        self.catalog = catalog
        self.log_dir = log_dir
        self.backends = backends
        self.interval = interval
        self.lock = threading.RLock()
        self.addresses = AddressPool()
        self.probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ecs-healthcheck")
        self.services: dict[tuple[str, str, str], ServiceState] = {}
        self.orphans: list[TaskProcess] = []  # tasks of deleted services, still stopping
        self._stop = threading.Event()
        self._wake = threading.Event()  # a probe finished, a process exited or a probe is due
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="ecs-task-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the loop, then every task (SIGTERM, SIGKILL after their stop timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self.lock:
            tasks = [t for s in self.services.values() for d in s.deployments for t in d.tasks.values()]
            tasks += self.orphans
            for task in tasks:
                task.request_stop("runner shutting down", "UserInitiated")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(t.last_status != "STOPPED" for t in tasks):
            for task in tasks:
                task.poll()
            time.sleep(0.1)
        self.probes.shutdown(wait=False, cancel_futures=True)

    def task_pids(self) -> list[int]:
        with self.lock:
            return [
                c.proc.pid
                for s in self.services.values() for d in s.deployments for t in d.tasks.values()
                for c in t.containers if c.proc is not None and c.proc.poll() is None
            ]

    def wake(self) -> None:
        """Look at the tasks now rather than at the next tick (called from probe and exit-watch threads)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_all()
            except Exception:  # noqa: BLE001 - one bad tick must not stop the scheduler
                log.exception("task runner tick failed")
            tick = time.monotonic() + self.interval
            while not self._stop.is_set() and not self._until_reconcile(tick):
                pass

    def _until_reconcile(self, tick: float) -> bool:
        """Wait for the tick, a due health check or a task's event; True when a reconcile is due.

        Between ticks only the tasks move (exits reaped, probe results read, due probes
        started); a task whose status or health changed brings the reconcile forward, so
        its consequences (draining old tasks, completing the rollout) do not wait a tick.
        """
        self._wake.wait(max(min(tick, self._next_probe_due()) - time.monotonic(), 0.005))
        self._wake.clear()  # whatever woke it is looked at below
        if time.monotonic() >= tick:
            return True
        try:
            with self.lock:
                return any([t.poll() for s in self.services.values() for d in s.deployments for t in d.tasks.values()])
        except Exception:  # noqa: BLE001
            log.exception("task runner tick failed")
            return True

    def _next_probe_due(self) -> float:
        with self.lock:
            due = [d for s in self.services.values() for dep in s.deployments for t in dep.tasks.values()
                   if (d := t.next_probe_due()) is not None]
        return min(due, default=float("inf"))

    # -- API hooks (called by gameday.aws.moto_hooks inside the API request) --------
    def on_service_changed(self, backend: Any, service: Any) -> None:
        """Record a new deployment at once, so no API reader sees moto's stale counts."""
        with self.lock:
            state = self._state_for(backend, service)
            self._track_deployment(backend, service, state)
            self._publish(service, state)

    # -- reconciliation ------------------------------------------------------------
    def reconcile_all(self) -> None:
        with self.lock:
            seen: set[tuple[str, str, str]] = set()
            for backend in self.backends():
                for service in list(backend.services.values()):
                    if service.status != "ACTIVE" or service.deployment_controller.get("type") != "ECS":
                        continue
                    state = self._state_for(backend, service)
                    seen.add(state.key)
                    self._track_deployment(backend, service, state)
                    self._schedule(backend, service, state)
                    self._publish(service, state)
                self._prune_stopped(backend)
            for key in set(self.services) - seen:
                self._retire(self.services.pop(key))
            for task in self.orphans:
                task.poll()
            self.orphans = [t for t in self.orphans if t.last_status != "STOPPED"]

    def _state_for(self, backend: Any, service: Any) -> ServiceState:
        key = (backend.account_id, backend.region_name, f"{service.cluster_name}:{service.name}")
        if key not in self.services:
            self.services[key] = ServiceState(key=key)
        return self.services[key]

    def _track_deployment(self, backend: Any, service: Any, state: ServiceState) -> None:
        if not service.task_definition:
            return
        arn = backend.describe_task_definition(service.task_definition).arn
        service.task_definition = arn  # moto stores whatever string update-service got
        api_id = service.deployments[0]["id"] if service.deployments else f"ecs-svc/{uuid.uuid4().int % 10**19}"
        if not state.deployments:
            state.deployments.append(Deployment(id=api_id, task_definition_arn=arn, desired=service.desired_count))
            self._event(service, f"(service {service.name}) has started deployment {api_id}.")
            return
        primary = state.primary
        primary.desired = service.desired_count
        if arn == primary.task_definition_arn and api_id == primary.id:
            return
        # A new task definition, or --force-new-deployment (moto renames deployments[0]).
        new_id = api_id if api_id != primary.id else f"ecs-svc/{uuid.uuid4().int % 10**19}"
        for old in state.deployments:
            old.status, old.updated_at = "ACTIVE", _now()
        state.deployments.insert(0, Deployment(id=new_id, task_definition_arn=arn, desired=service.desired_count))
        self._event(service, f"(service {service.name}) has started deployment {new_id} of {arn.rsplit('/', 1)[-1]}.")

    def _schedule(self, backend: Any, service: Any, state: ServiceState) -> None:
        for deployment in state.deployments:
            for arn, task in deployment.tasks.items():
                self._follow_api_stop(backend, service, arn, task)
                task.poll()
                if task.failed and not getattr(task, "_counted", False):
                    task._counted = True  # type: ignore[attr-defined]
                    deployment.failed_tasks += 1
                    backoff = min(0.5 * 2 ** (deployment.failed_tasks - 1), MAX_BACKOFF_S)
                    deployment.next_launch = time.monotonic() + backoff
                    self._event(service, f"(service {service.name}) task {arn.rsplit('/', 1)[-1]} stopped: {task.stopped_reason}")
                self._write_task(backend, service, arn, task)
        primary = state.primary
        self._launch_missing(backend, service, state, primary)
        self._drain_old(service, state)
        was_done = primary.rollout_state == "COMPLETED"
        if len(state.deployments) == 1 and len(primary.serving()) == primary.desired:
            primary.rollout_state = "COMPLETED"
            if not was_done:
                primary.updated_at = _now()
                self._event(service, f"(service {service.name}) deployment {primary.id} completed.")
                self._event(service, f"(service {service.name}) has reached a steady state.")

    def _launch_missing(self, backend: Any, service: Any, state: ServiceState, primary: Deployment) -> None:
        total_live = sum(len(d.live()) for d in state.deployments)
        room = 2 * primary.desired - total_live  # maximumPercent 200
        missing = min(primary.desired - len(primary.live()), room)
        if missing <= 0 or time.monotonic() < primary.next_launch:
            return
        task_def = backend.describe_task_definition(primary.task_definition_arn)
        definition = {"containerDefinitions": task_def.container_definitions}
        for _ in range(missing):
            moto_task = self._new_moto_task(backend, service, task_def, primary.id)
            process = TaskProcess(moto_task.id, definition, self.catalog, self.addresses, self.log_dir, self.probes,
                                  wake=self.wake)
            primary.tasks[moto_task.task_arn] = process
            process.start()
            self._write_task(backend, service, moto_task.task_arn, process)
            self._event(service, f"(service {service.name}) has started 1 tasks: (task {moto_task.id}).")

    def _drain_old(self, service: Any, state: ServiceState) -> None:
        primary = state.primary
        healthy = len(primary.serving()) + sum(len(d.serving()) for d in state.deployments[1:])
        for old in reversed(state.deployments[1:]):
            old.rollout_state = "COMPLETED" if old.rollout_state == "COMPLETED" else "IN_PROGRESS"
            for task in old.live():
                # tasks that do not serve never help minimumHealthyPercent: stop them now
                if not task.serving:
                    task.request_stop(f"Task stopped by deployment {primary.id}")
                elif healthy - 1 >= primary.desired:
                    task.request_stop(f"Task stopped by deployment {primary.id}")
                    healthy -= 1
            if not old.live() and all(t.last_status == "STOPPED" for t in old.tasks.values()):
                state.deployments.remove(old)
                self._event(service, f"(service {service.name}) deployment {old.id} drained.")

    def _follow_api_stop(self, backend: Any, service: Any, arn: str, task: TaskProcess) -> None:
        moto_task = backend.tasks.get(service.cluster_name, {}).get(arn)
        if moto_task is None or (moto_task.desired_status == "STOPPED" and task.desired_status == "RUNNING"):
            reason = getattr(moto_task, "stopped_reason", "") or "Task stopped by the StopTask API"
            task.request_stop(reason, "UserInitiated")

    # -- writing moto's objects ----------------------------------------------------------
    def _new_moto_task(self, backend: Any, service: Any, task_def: Any, deployment_id: str) -> Any:
        from moto.ecs.models import Task

        cluster = backend.clusters[service.cluster_name]
        network = service.network_configuration if task_def.network_mode == "awsvpc" else None
        task = Task(
            cluster, task_def, None, None, backend, group=f"service:{service.name}",
            launch_type=service.launch_type or "", started_by=deployment_id,
            networking_configuration=network or None, platform_version=service.platform_version,
        )
        for container in task.containers:
            container.task_arn = task.task_arn  # moto puts the task definition ARN here
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        return task

    def _write_task(self, backend: Any, service: Any, arn: str, process: TaskProcess) -> None:
        task = backend.tasks.get(service.cluster_name, {}).get(arn)
        if task is None:
            return
        task.last_status = process.last_status
        task.desired_status = process.desired_status
        task.health_status = process.health_status
        events = process.events
        task.started_at = _stamp(events.started)
        task.stopping_at = _stamp(events.stopping)
        task.stopped_at = _stamp(events.stopped)
        task.attributes = [*_attribute(HEALTHY_AT, events.healthy), *_attribute(FAILED_AT, events.failed),
                           {"name": RECONCILE_TICK, "value": f"{self.interval:g}"}]
        task.stop_code = process.stop_code or None
        task.stopped_reason = process.stopped_reason
        task.containers = self._containers_view(task, process)

    def _containers_view(self, task: Any, process: TaskProcess) -> list[Any]:
        from moto.ecs.models import Container

        views = list(task.containers)
        while len(views) < len(process.containers):
            extra = Container.__new__(Container)  # moto makes one Container per task; copy it
            extra.__dict__.update(views[0].__dict__)
            views.append(extra)
        for view, container in zip(views, process.containers, strict=False):
            view.name, view.image = container.name, container.image
            view.last_status = process.last_status if process.last_status in ("PENDING", "RUNNING", "STOPPED") else "RUNNING"
            view.health_status = container.health.status if container.health else "UNKNOWN"
            view.exit_code = container.exit_code
            view.network_bindings = (
                [{"bindIP": process.host, "containerPort": container.port, "hostPort": container.port, "protocol": "tcp"}]
                if process.host and container.port else []
            )
            view.network_interfaces = [{"privateIpv4Address": process.host}] if process.host else []
        return views[: max(len(process.containers), 1)]

    def _publish(self, service: Any, state: ServiceState) -> None:
        if not state.deployments:
            return
        service.deployments = [d.to_api(service.launch_type, service.network_configuration) for d in state.deployments]
        service.running_count = sum(d["runningCount"] for d in service.deployments)
        service.pending_count = sum(d["pendingCount"] for d in service.deployments)

    def _event(self, service: Any, message: str) -> None:
        service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": message})
        del service.events[100:]
        log.info(message)

    def _prune_stopped(self, backend: Any) -> None:
        for tasks in backend.tasks.values():
            stopped = [arn for arn, t in tasks.items() if t.last_status == "STOPPED"]
            for arn in stopped[: max(0, len(stopped) - KEEP_STOPPED_TASKS)]:
                del tasks[arn]

    def _retire(self, state: ServiceState) -> None:
        """A deleted service: its tasks stop; they are polled until their processes are gone."""
        for deployment in state.deployments:
            for task in deployment.tasks.values():
                task.request_stop("Service deleted")
                self.orphans.append(task)
