"""One ECS task as local processes: one per container, on the task's own 127.x address.

The task runner creates a :class:`TaskProcess` for each task a service deployment
needs.  Each container's image goes through the image catalog to a local command,
gets the catalog env, the container definition's ``environment``, ``HOST`` (the task's
address) and ``PORT`` (the container port), and its ``healthCheck`` runs for real.

Task states follow the ECS task lifecycle: PROVISIONING -> PENDING -> RUNNING ->
DEACTIVATING -> STOPPING -> STOPPED.

Every task keeps the instants of what happened to it (:class:`TaskEvents`, wall-clock
``time.time()``), taken when it happened rather than when the runner's next tick saw it:
a health check's verdict at the moment the probe finished, an exit at the moment the
process ended (a thread waits for each container, ``waitid`` without reaping, and wakes
the runner).  The runner's tick still paces what ECS's scheduler paces (launches,
replacements); it no longer delays reading a probe result or noticing an exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gameday.aws.healthcheck import HEALTHY, UNHEALTHY, UNKNOWN, HealthCheck, HealthState
from gameday.faults import wrap_command
from gameday.images import ImageCatalog, ImageNotFound
from gameday.lifecycle import bindable, spawn, tail

# ECS tasks live in 127.42.0.0/16 so they never collide with the process kubelet's pods.
_TASK_NET = "127.42"
DEFAULT_STOP_TIMEOUT = 10.0  # ECS default is 30 s; rehearsals keep it short


class AddressPool:
    """Hands out 127.42.x.y addresses whose container port is free right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._next = 2

    def take(self, ports: list[int]) -> str:
        with self._lock:
            for _ in range(65000):
                n, self._next = self._next, self._next % 65000 + 2
                address = f"{_TASK_NET}.{n // 254}.{n % 254 + 1}"
                if address not in self._used and all(bindable(address, p) for p in ports):
                    self._used.add(address)
                    return address
        raise RuntimeError("no free 127.42.x.y address")

    def give_back(self, address: str) -> None:
        with self._lock:
            self._used.discard(address)


class ProbeResult(NamedTuple):
    """One health-check run and the instant it finished (monotonic for Docker's schedule, wall for events)."""

    passed: bool
    output: str
    finished: float  # time.monotonic()
    finished_at: float  # time.time()


def _probe(check: HealthCheck, env: dict[str, str]) -> ProbeResult:
    passed, output = check.run(env)
    return ProbeResult(passed, output, time.monotonic(), time.time())


@dataclass
class TaskEvents:
    """When things happened to one task, as wall-clock seconds (``time.time()``); None: not (yet).

    ``healthy`` is the first moment every essential container's health check had passed
    (tasks with a health check only); ``failed`` the moment it failed on its own (the
    essential container's exit, the probe that made it UNHEALTHY, the image that could
    not be resolved); ``stopping`` the stop request (SIGTERM), or the failure for a task that
    failed; ``stopped`` the exit of its last process.
    """

    started: float | None = None
    healthy: float | None = None
    failed: float | None = None
    stopping: float | None = None
    stopped: float | None = None


@dataclass
class ContainerProcess:
    name: str
    image: str
    port: int | None
    env: dict[str, str]
    argv: list[str] = field(default_factory=list)
    essential: bool = True
    proc: subprocess.Popen[Any] | None = None
    exit_code: int | None = None
    health: HealthState | None = None
    probe: Future[ProbeResult] | None = None
    healthy_at: float | None = None  # wall-clock instant its health last turned HEALTHY
    exited_at: float | None = None  # wall-clock instant its process exited


class TaskProcess:
    """The local processes behind one ECS task; the runner calls :meth:`poll` each tick."""

    def __init__(
        self,
        task_id: str,
        task_definition: dict[str, Any],
        catalog: ImageCatalog,
        addresses: AddressPool,
        log_dir: Path,
        probes: ThreadPoolExecutor,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.task_id = task_id
        self.containers_spec: list[dict[str, Any]] = list(task_definition.get("containerDefinitions") or [])
        self.catalog = catalog
        self.addresses = addresses
        self.log_path = log_dir / f"{task_id}.log"
        self.probes = probes
        self.wake = wake  # tells the runner something happened: a probe finished, a process exited
        self.host = ""
        self.containers: list[ContainerProcess] = []
        self.last_status = "PROVISIONING"
        self.desired_status = "RUNNING"
        self.stop_code = ""
        self.stopped_reason = ""
        self.events = TaskEvents()
        self.stopping_since: float | None = None  # monotonic, for the SIGKILL deadline
        self.failed = False  # stopped on its own (crash, unhealthy, image), not by request

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        ports = [_container_port(c) for c in self.containers_spec]
        self.host = self.addresses.take([p for p in ports if p])
        self.last_status = "PENDING"
        for spec, port in zip(self.containers_spec, ports, strict=False):
            image = str(spec.get("image", ""))
            try:
                resolved = self.catalog.resolve(image)
            except ImageNotFound as exc:
                self._fail("TaskFailedToStart", f"CannotPullContainerError: {exc}", time.time())
                return
            port = port or resolved.port
            env = {**os.environ, **resolved.env, **_env_list(spec.get("environment"))}
            env.update(HOST=self.host, PORT=str(port or ""))
            argv = wrap_command(resolved.command([str(a) for a in spec.get("command") or []]), resolved.fault)
            container = ContainerProcess(
                name=str(spec.get("name", "app")), image=image, port=port, env=env, argv=argv,
                essential=bool(spec.get("essential", True)),
            )
            self.containers.append(container)
        with self.log_path.open("ab") as log:
            log.write(f"--- task {self.task_id} on {self.host}\n".encode())
        now, self.events.started = time.monotonic(), time.time()  # one instant: Docker's interval counts from it
        for container, spec in zip(self.containers, self.containers_spec, strict=False):
            container.proc = spawn(container.argv, log=self.log_path, env=container.env, grace=2.0,
                                   die_with_harness=True)
            check = HealthCheck.from_container(spec, self.host)
            container.health = HealthState(check, started=now) if check else None
        self.last_status = "RUNNING"
        for container in self.containers:
            threading.Thread(target=self._watch_exit, args=(container,), name=f"ecs-task-exit-{self.task_id[:8]}",
                             daemon=True).start()

    def _watch_exit(self, container: ContainerProcess) -> None:
        """Stamp the moment the container's process ends and wake the runner (it reaps, on its thread)."""
        proc = container.proc
        if proc is None or not hasattr(os, "waitid"):  # without waitid (macOS) the tick notices exits
            return
        with suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # leaves the zombie for Popen.poll
            if container.exited_at is None:
                container.exited_at = time.time()
        self.wake()

    def request_stop(self, reason: str, code: str = "ServiceSchedulerInitiated") -> None:
        """Begin stopping: SIGTERM now, SIGKILL after the container's stopTimeout."""
        if self.desired_status == "STOPPED":
            return
        self.desired_status = "STOPPED"
        self.stop_code = self.stop_code or code
        self.stopped_reason = self.stopped_reason or reason
        self.stopping_since = time.monotonic()
        self.events.stopping = time.time()
        self.last_status = "DEACTIVATING" if self.last_status == "RUNNING" else self.last_status
        self._signal_all(signal.SIGTERM)

    def poll(self) -> bool:
        """Advance the task: reap exits, read finished and start due health checks, finish stopping.

        True when that changed what the service sees (status, health, failure).
        """
        if self.last_status == "STOPPED":
            return False
        before = (self.last_status, self.desired_status, self.health_status, self.failed)
        self._advance()
        return (self.last_status, self.desired_status, self.health_status, self.failed) != before

    def _advance(self) -> None:
        if self.last_status == "STOPPED":
            return
        now = time.monotonic()
        for container in self.containers:
            if container.proc is not None and container.exit_code is None:
                container.exit_code = container.proc.poll()
                if container.exit_code is not None and container.exited_at is None:
                    container.exited_at = time.time()  # reaped before its watcher stamped it
                if container.exit_code is not None and container.essential and self.desired_status == "RUNNING":
                    self._fail("EssentialContainerExited", f"Essential container in task exited (exit code {container.exit_code})",
                               container.exited_at)
        if self.desired_status == "RUNNING":
            self._run_health_checks(now)
            return
        self.last_status = "STOPPING"
        if self.stopping_since is not None and now - self.stopping_since > self._stop_timeout():
            self._signal_all(signal.SIGKILL)
        if all(c.proc is None or c.proc.poll() is not None for c in self.containers):
            for container in self.containers:
                if container.proc is not None and container.exit_code is None:
                    container.exit_code = container.proc.returncode
            self.last_status = "STOPPED"
            exits = [c.exited_at for c in self.containers if c.exited_at is not None]
            self.events.stopped = max(exits) if len(exits) == len(self.containers) and exits else time.time()
            if self.host:
                self.addresses.give_back(self.host)

    def _run_health_checks(self, now: float) -> None:
        """Read finished probes (their instant is when they finished, not when read), start due ones."""
        for container in self.containers:
            health = container.health
            if health is None:
                continue
            if container.probe is not None and container.probe.done():
                result = container.probe.result()
                container.probe = None
                was = health.status
                health.record(result.finished, result.passed, result.output)
                if health.status == HEALTHY and was != HEALTHY:
                    container.healthy_at = result.finished_at
                if health.status == UNHEALTHY and container.essential:
                    self._fail("ServiceSchedulerInitiated", f"Task failed container health checks ({result.output})",
                               result.finished_at)
                    return
            elif container.probe is None and health.due(now):
                container.probe = self.probes.submit(_probe, health.check, container.env)
                container.probe.add_done_callback(lambda _: self.wake())
        if self.events.healthy is None and self.has_health_check and self.health_status == HEALTHY:
            self.events.healthy = max(c.healthy_at or 0.0 for c in self.containers
                                      if c.health is not None and c.essential)

    def next_probe_due(self) -> float | None:
        """The monotonic instant the next health check is due, when none is running; None if none is."""
        if self.desired_status != "RUNNING" or self.last_status != "RUNNING":
            return None
        due = [c.health.next_probe for c in self.containers if c.health is not None and c.probe is None]
        return min(due) if due else None

    def _fail(self, code: str, reason: str, at: float | None) -> None:
        self.failed = True
        self.events.failed = at if at is not None else time.time()
        self.stop_code, self.stopped_reason = code, reason
        with self.log_path.open("ab") as log:
            log.write(f"--- task {self.task_id} stopping: {reason}\n".encode())
        self.request_stop(reason, code)
        self.events.stopping = self.events.failed  # it began stopping when it failed, before the runner saw it
        if not self.containers:
            self.last_status, self.events.stopped = "STOPPED", self.events.failed
            if self.host:
                self.addresses.give_back(self.host)

    # -- views -------------------------------------------------------------------
    @property
    def health_status(self) -> str:
        statuses = [c.health.status for c in self.containers if c.health is not None and c.essential]
        if not statuses:
            return UNKNOWN
        if UNHEALTHY in statuses:
            return UNHEALTHY
        return HEALTHY if all(s == HEALTHY for s in statuses) else UNKNOWN

    @property
    def has_health_check(self) -> bool:
        return any(c.health is not None for c in self.containers)

    @property
    def live(self) -> bool:
        return self.desired_status == "RUNNING" and self.last_status != "STOPPED"

    @property
    def serving(self) -> bool:
        """Counted as running by the service: RUNNING and (healthy, or no health check)."""
        if not self.live or self.last_status != "RUNNING":
            return False
        return self.health_status == HEALTHY if self.has_health_check else True

    def logs(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def _stop_timeout(self) -> float:
        timeouts = [float(c.get("stopTimeout", DEFAULT_STOP_TIMEOUT)) for c in self.containers_spec]
        return max(timeouts or [DEFAULT_STOP_TIMEOUT])

    def _signal_all(self, sig: int) -> None:
        for container in self.containers:
            if container.proc is not None and container.proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(os.getpgid(container.proc.pid), sig)


def _container_port(spec: dict[str, Any]) -> int | None:
    mappings = spec.get("portMappings") or []
    return int(mappings[0]["containerPort"]) if mappings and mappings[0].get("containerPort") else None


def _env_list(items: Any) -> dict[str, str]:
    return {str(i["name"]): str(i.get("value", "")) for i in items or [] if "name" in i}
