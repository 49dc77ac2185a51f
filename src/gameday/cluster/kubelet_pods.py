"""The pod worker: one thread per pod that runs its containers as local processes.

Like the real kubelet's pod workers, each pod is synced by its own loop: start or
restart containers (with back-off), run due probes, write the pod status when it
changed, and on deletion stop the processes within the grace period and delete the
pod object with grace 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from gameday.cluster.kubelet_containers import Backoff, ContainerRun, rfc3339
from gameday.cluster.kubelet_events import EventRecorder
from gameday.cluster.kubelet_probes import ProbeTarget
from gameday.cluster.kubelet_status import comparable, pod_status, should_restart, status_patch
from gameday.cluster.kubelet_volumes import (
    Lookup,
    container_env,
    expand,
    mount_env_name,
    mount_map,
    rewrite_paths,
    sync_volumes,
)
from gameday.errors import ConfigError
from gameday.faults import FAULT_ANNOTATION, FaultSpec, parse_fault, wrap_command
from gameday.images import ImageCatalog

log = logging.getLogger("gameday.cluster.kubelet")

Obj = dict[str, Any]
LOCAL_ADDRESS_ANNOTATION = "gameday.io/local-address"
IMAGE_ERROR_SHOWN_SECONDS = 2.0  # how long ErrImagePull shows before ImagePullBackOff
# A container starts with a clean environment, as in a real runtime: only what is needed
# to find and run the local command comes from the kubelet's own environment.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass
class KubeletContext:
    """What every pod worker shares with the kubelet."""

    core: client.CoreV1Api
    catalog: ImageCatalog
    workdir: Path
    backoff: Backoff
    configmaps: Lookup
    secrets: Lookup
    forget: Callable[[str], None]  # called with the pod uid when a worker is done
    events: EventRecorder | None = None  # node-side Events (Pulled, Started, BackOff, Unhealthy...)


def container_port(container: Obj, default: int | None) -> int | None:
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else default


class PodWorker:
    def __init__(self, ctx: KubeletContext, pod: Obj, host: str, pod_ip: str) -> None:
        self.ctx = ctx
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.host = host
        self.pod_ip = pod_ip
        self.dir = ctx.workdir / "pods" / self.uid
        self.init_runs = [self._new_run(c) for c in pod["spec"].get("initContainers") or []]
        self.runs = [self._new_run(c) for c in pod["spec"].get("containers") or []]
        if self.init_runs:
            for run in self.runs:
                run.waiting = ("PodInitializing", "")
        self._wake = threading.Event()
        self._shutdown = threading.Event()
        self._vanished = False
        self._volumes_dirty = True
        self._volumes: dict[str, Path] = {}
        self._written: Obj | None = None
        self._start_time = rfc3339()
        self._thread = threading.Thread(target=self._run, name=f"pod-{pod['metadata']['name']}", daemon=True)

    def _new_run(self, container: Obj) -> ContainerRun:
        return ContainerRun(name=container["name"], image=container.get("image", ""), spec=container,
                            backoff=self.ctx.backoff, log_dir=self.dir / "logs" / container["name"], wake=self.wake)

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    # -- signals from the kubelet --------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.wake()

    def configmap_changed(self) -> None:
        self._volumes_dirty = True
        self.wake()

    def vanished(self) -> None:
        """The pod object is gone from the API (force-deleted): stop its processes now."""
        self._vanished = True
        self.wake()

    def shutdown(self, grace: float = 2.0) -> None:
        """Kubelet stop: kill the processes, leave the API object alone."""
        self._shutdown.set()
        self.wake()
        self._thread.join(timeout=grace + 10)
        self._terminate(grace)  # in case the thread was stuck elsewhere

    @property
    def volumes(self) -> dict[str, Path]:
        """Volume name -> local directory, as last synced."""
        return dict(self._volumes)

    def container(self, name: str | None) -> ContainerRun | None:
        if name is None:
            return self.runs[0] if self.runs else None
        return next((r for r in [*self.runs, *self.init_runs] if r.name == name), None)

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._annotate()
            while not self._shutdown.is_set():
                meta = self.pod["metadata"]
                if self._vanished or meta.get("deletionTimestamp"):
                    self._finalize(meta)
                    return
                self._sync_once()
                self._wake.wait(self._next_wake())
                self._wake.clear()
            self._terminate(2.0)
        except Exception as exc:
            if _api_unreachable(exc):  # the control plane went first (a run stopped by a signal): no traceback
                log.warning("pod worker %s stopped: the API server no longer answers", self.key)
            else:
                log.exception("pod worker %s failed", self.key)
            self._terminate(2.0)
        finally:
            self.ctx.forget(self.uid)

    def _sync_once(self) -> None:
        if self._volumes_dirty:
            self._volumes_dirty = False
            self._volumes = sync_volumes(self.pod, self.dir / "volumes", self.ctx.configmaps, self.ctx.secrets)
        now = time.monotonic()
        policy = self.pod["spec"].get("restartPolicy")
        if self._initialized(now, policy):
            for run in self.runs:
                self._sync_container(run, now, policy)
            for run in self.runs:
                self._run_probes(run)
        self._write_status()

    def _initialized(self, now: float, policy: str | None) -> bool:
        """Run init containers one at a time, each to success, before the app containers."""
        init_policy = "Never" if policy == "Never" else "OnFailure"
        for run in self.init_runs:
            done = run.current_termination
            if done is not None and done["exitCode"] == 0 and not run.running:
                continue
            self._sync_container(run, now, init_policy)
            return False
        return True

    def _sync_container(self, run: ContainerRun, now: float, policy: str | None) -> None:
        if run.running:
            return
        run.reap(now)
        if run.current_termination is not None:  # a finished run the restart policy decides on
            if not should_restart(policy, run.current_termination["exitCode"]):
                run.next_attempt = float("inf")  # done for good: stays terminated
                return
            run.prepare_restart()
        if now < run.next_attempt:
            self._show_backoff(run, now)
            return
        spec = run.resolve(self.ctx.catalog, now)
        if spec is None:
            run.pull_error_until = now + IMAGE_ERROR_SHOWN_SECONDS
            self._pull_failed(run)
            return
        self._pulled(run)
        port = container_port(run.spec, spec.port)
        base = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        base["HOSTNAME"] = self.pod["metadata"]["name"]
        env = container_env(self.pod, run.spec, {**base, **spec.env}, self.pod_ip,
                            self.ctx.configmaps, self.ctx.secrets)
        env["HOST"] = self.host
        if port is not None:
            env["PORT"] = str(port)
        mounts = mount_map(run.spec, self._volumes)
        env.update({mount_env_name(name): str(path) for name, path in self._volumes.items()})
        env = {k: rewrite_paths(v, mounts) for k, v in env.items()}
        if run.spec.get("command"):
            argv = [expand(str(a), env) for a in [*run.spec["command"], *(run.spec.get("args") or [])]]
        else:
            argv = spec.command([expand(str(a), env) for a in run.spec.get("args") or []])
        argv = [rewrite_paths(a, mounts) for a in argv]
        try:
            argv = self._with_fault(run, spec.fault, argv)
        except ConfigError as exc:
            run.waiting = ("CreateContainerConfigError", exc.one_line())
            run.next_attempt = now + run.backoff.base
            self._event(run, "Warning", "Failed", f"Error: {exc.one_line()}")
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        run.launch(argv, env, self.dir, self._target(run, env))
        self._launched(run)

    def _with_fault(self, run: ContainerRun, catalog_fault: FaultSpec, argv: list[str]) -> list[str]:
        """The release's fault (pod annotation gameday.io/fault, else the catalog tag's) wrapped
        around the container's command; its probe paths stay unbroken, as with a real bad release."""
        annotation = (self.pod["metadata"].get("annotations") or {}).get(FAULT_ANNOTATION)
        fault = parse_fault(annotation, f"pod {self.key} annotation {FAULT_ANNOTATION}") if annotation else catalog_fault
        paths = {kind: ((run.spec.get(f"{kind}Probe") or {}).get("httpGet") or {}).get("path")
                 for kind in ("readiness", "liveness")}
        return wrap_command(argv, fault, ready_path=paths["readiness"], live_path=paths["liveness"])

    def _show_backoff(self, run: ContainerRun, now: float) -> None:
        pod = f"{self.pod['metadata']['name']}_{self.pod['metadata']['namespace']}({self.uid})"
        if run.pull_failures:
            if now >= run.pull_error_until:
                run.waiting = ("ImagePullBackOff", f'Back-off pulling image "{run.image}"')
                self._event(run, "Normal", "BackOff", f'Back-off pulling image "{run.image}"')
                self._event(run, "Warning", "Failed", "Error: ImagePullBackOff")
        elif run.last_termination is not None or run.current_termination is not None:
            delay = run.backoff.delay(run.crash_failures)
            run.waiting = ("CrashLoopBackOff",
                           f"back-off {delay:g}s restarting failed container={run.name} pod={pod}")
            self._event(run, "Warning", "BackOff", f"Back-off restarting failed container {run.name} in pod {pod}")

    # -- node-side events (kubelet_events), worded as the real kubelet words them ------------
    def _event(self, run: ContainerRun, type_: str, reason: str, message: str) -> None:
        if self.ctx.events is None:
            return
        section = "initContainers" if any(r is run for r in self.init_runs) else "containers"
        self.ctx.events.emit(self.pod, f"spec.{section}{{{run.name}}}", type_, reason, message,
                             self.pod["spec"].get("nodeName") or "")

    def _pull_failed(self, run: ContainerRun) -> None:
        self._event(run, "Normal", "Pulling", f'Pulling image "{run.image}"')
        self._event(run, "Warning", "Failed", f'Failed to pull image "{run.image}": {run.waiting[1]}')
        self._event(run, "Warning", "Failed", "Error: ErrImagePull")

    def _pulled(self, run: ContainerRun) -> None:
        if run.spec.get("imagePullPolicy") == "Always":
            self._event(run, "Normal", "Pulling", f'Pulling image "{run.image}"')
            self._event(run, "Normal", "Pulled", f'Successfully pulled image "{run.image}" in 0s (0s including '
                                                 "waiting). Image size: 0 bytes.")
        else:
            self._event(run, "Normal", "Pulled", f'Container image "{run.image}" already present on machine')

    def _launched(self, run: ContainerRun) -> None:
        self._event(run, "Normal", "Created", f"Created container: {run.name}")
        if run.proc is None and run.current_termination is not None:
            self._event(run, "Warning", "Failed", f"Error: {run.current_termination.get('message', '')}")
        else:
            self._event(run, "Normal", "Started", f"Started container {run.name}")

    def _probed(self, run: ContainerRun, kind: str) -> None:
        state = run.probes.get(kind)
        if state is not None and state.failures > 0:  # this tick failed
            self._event(run, "Warning", "Unhealthy", f"{kind.capitalize()} probe failed: {state.message}")

    def _target(self, run: ContainerRun, env: dict[str, str]) -> ProbeTarget:
        ports = {p["name"]: int(p["containerPort"]) for p in run.spec.get("ports") or [] if p.get("name")}
        return ProbeTarget(host=self.host, ports=ports, env=env, cwd=str(self.dir))

    def _run_probes(self, run: ContainerRun) -> None:
        target = run.target
        if not run.running or target is None:
            return
        now = time.monotonic()
        startup = run.probes.get("startup")
        if startup is not None and startup.result is not True:
            if startup.due(now):
                startup.check(target)
                self._probed(run, "startup")
                if startup.result is False:
                    self._kill_for_probe(run, "startup", startup.message)
            return
        for kind in ("liveness", "readiness"):
            state = run.probes.get(kind)
            if state is not None and state.due(now):
                state.check(target)
                self._probed(run, kind)
                if kind == "liveness" and state.result is False:
                    self._kill_for_probe(run, kind, state.message)
                    return

    def _kill_for_probe(self, run: ContainerRun, kind: str, message: str) -> None:
        log.info("pod %s container %s failed %s probe: %s", self.key, run.name, kind, message)
        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds") or 30)
        reason = f"Container {run.name} failed {kind} probe, will be restarted"
        self._event(run, "Normal", "Killing", reason)
        run.kill(grace, reason)
        run.reap(time.monotonic())

    def _next_wake(self) -> float:
        now = time.monotonic()
        due = [now + 2.0]
        for run in [*self.init_runs, *self.runs]:
            if not run.running and run.next_attempt != float("inf"):
                due.append(run.next_attempt)
                if run.pull_failures and run.pull_error_until > now:  # a past deadline would spin the loop
                    due.append(run.pull_error_until)
            due.extend(p.next_due for p in run.probes.values())
        return max(0.05, min(due) - now)

    # -- status and API writes ------------------------------------------------------------
    def _annotate(self) -> None:
        port = next((p for r in self.runs if (p := container_port(r.spec, self._catalog_port(r))) is not None), None)
        address = f"{self.host}:{port}" if port is not None else self.host
        body = {"metadata": {"annotations": {LOCAL_ADDRESS_ANNOTATION: address}}}
        meta = self.pod["metadata"]
        try:
            self.ctx.core.patch_namespaced_pod(meta["name"], meta["namespace"], body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._vanished = True  # deleted before it started: nothing to run

    def _catalog_port(self, run: ContainerRun) -> int | None:
        try:
            return self.ctx.catalog.resolve(run.image).port
        except LookupError:
            return None

    def _write_status(self) -> None:
        statuses = [run.status() for run in self.runs]
        init_statuses = [run.status(init=True) for run in self.init_runs]
        status = pod_status(self.pod, statuses, self.pod_ip, self._start_time, rfc3339(), init_statuses)
        if self._written is not None and comparable(status) == self._written:
            return
        meta = self.pod["metadata"]
        try:
            self.ctx.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], status_patch(status))
            self._written = comparable(status)
        except ApiException as exc:
            if exc.status == 404:
                self._vanished = True
            else:
                log.debug("status write for %s failed: %s", self.key, exc.reason)

    # -- termination --------------------------------------------------------------------
    def _finalize(self, meta: Obj) -> None:
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        if not self._vanished:
            for run in [*self.init_runs, *self.runs]:
                if run.running:
                    self._event(run, "Normal", "Killing", f"Stopping container {run.name}")
        self._terminate(0.0 if self._vanished else float(grace))
        if self._vanished:
            return
        try:
            options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
            self.ctx.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=options)
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("could not finalize deletion of %s: %s", self.key, exc.reason)

    def _terminate(self, grace: float) -> None:
        """SIGTERM every container's process group, SIGKILL what is left after ``grace``."""
        procs = [r.proc for r in [*self.init_runs, *self.runs] if r.proc is not None and r.proc.poll() is None]
        groups = []
        for proc in procs:
            try:
                groups.append(os.getpgid(proc.pid))
                os.killpg(groups[-1], signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for pgid in groups:  # leftovers, including children that outlived their leader
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        now = time.monotonic()
        for run in [*self.init_runs, *self.runs]:
            run.reap(now)


def _api_unreachable(exc: BaseException) -> bool:
    """A connection the API server refused or dropped (urllib3's errors, wrapped or not)."""
    import urllib3.exceptions

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (urllib3.exceptions.MaxRetryError, urllib3.exceptions.NewConnectionError,
                             urllib3.exceptions.ProtocolError, ConnectionError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
