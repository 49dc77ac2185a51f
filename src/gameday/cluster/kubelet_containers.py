"""One container of a pod as a local process: start, log capture, exit, back-off, probes.

A ``ContainerRun`` keeps what the real kubelet keeps per container: the current
process, restartCount, the last termination, the back-off clock (CrashLoopBackOff,
ImagePullBackOff) and the probe counters.  Its ``status()`` is the containerStatuses
entry the API shows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gameday.cluster.kubelet_probes import ProbeSpec, ProbeState, ProbeTarget
from gameday.images import ImageCatalog, ImageNotFound, ImageSpec
from gameday.lifecycle import cancel_cleanup, die_with_parent, on_cleanup


def rfc3339(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Backoff:
    """Restart and image-pull back-off: the first retry is immediate, then base, 2*base, ... max."""

    base: float = 10.0
    maximum: float = 300.0

    def delay(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        return min(self.maximum, self.base * 2 ** (failures - 2))


def capture_output(proc: subprocess.Popen[bytes], log_path: Path, on_exit: Callable[[], None]) -> None:
    """Copy the process's output into ``log_path`` as '<RFC3339Nano> <line>' records."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as out:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            if not line.endswith(b"\n"):
                line += b"\n"
            out.write(rfc3339_nano(time.time()).encode() + b" " + line)
    proc.stdout.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    on_exit()


def kill_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM the process group, wait ``grace`` seconds, then SIGKILL it."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # children that outlived the leader still die with the group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass
class ContainerRun:
    """The kubelet's record of one container in one pod."""

    name: str
    image: str
    spec: dict[str, Any]
    log_dir: Path
    backoff: Backoff
    wake: Callable[[], None]
    proc: subprocess.Popen[bytes] | None = None
    restart_count: int = 0
    launches: int = 0
    started_at: float = 0.0
    waiting: tuple[str, str] = ("ContainerCreating", "")
    last_termination: dict[str, Any] | None = None
    current_termination: dict[str, Any] | None = None
    crash_failures: int = 0
    pull_failures: int = 0
    next_attempt: float = 0.0
    probes: dict[str, ProbeState] = field(default_factory=dict)
    killed_reason: str = ""
    pull_error_until: float = 0.0
    target: ProbeTarget | None = None
    _cleanup_handle: int = 0

    # -- queries ---------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def started(self) -> bool:
        startup = self.probes.get("startup")
        return self.running and (startup is None or startup.result is True)

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        readiness = self.probes.get("readiness")
        return readiness is None or readiness.result is True

    def log_path(self, restart: int | None = None) -> Path:
        return self.log_dir / f"{self.restart_count if restart is None else restart}.log"

    def container_id(self) -> str:
        return f"gameday://{self.log_dir.parent.name}-{self.name}-{self.restart_count}"

    # -- actions ---------------------------------------------------------------------
    def resolve(self, catalog: ImageCatalog, now: float) -> ImageSpec | None:
        """The image's local command, or None while the 'pull' fails (ErrImagePull / back-off)."""
        try:
            spec = catalog.resolve(self.image)
        except ImageNotFound as exc:
            self.pull_failures += 1
            self.next_attempt = now + max(self.backoff.delay(self.pull_failures), self.backoff.base)
            self.waiting = ("ErrImagePull", f'failed to pull and unpack image "{self.image}": {exc}')
            return None
        self.pull_failures = 0
        return spec

    def launch(self, argv: list[str], env: dict[str, str], cwd: Path, target: ProbeTarget) -> None:
        self.current_termination = None
        self.killed_reason = ""
        self.target = target
        # restartCount counts containers created after the first, as the real kubelet does
        self.launches += 1
        self.restart_count = self.launches - 1
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True,
                                    preexec_fn=die_with_parent)
        except OSError as exc:
            self.crash_failures += 1
            self.current_termination = {"exitCode": 128, "reason": "StartError", "message": str(exc),
                                        "startedAt": rfc3339(), "finishedAt": rfc3339()}
            self.next_attempt = time.monotonic() + self.backoff.delay(self.crash_failures)
            return
        self.proc = proc
        self.started_at = time.time()
        self._cleanup_handle = on_cleanup(lambda: kill_group(proc, 1.0))
        threading.Thread(target=capture_output, args=(proc, self.log_path(), self.wake),
                         name=f"log-{self.name}", daemon=True).start()
        start = time.monotonic()
        self.probes = {kind: ProbeState(spec, start) for kind in ("startup", "readiness", "liveness")
                       if (spec := ProbeSpec.parse(kind, self.spec.get(f"{kind}Probe"))) is not None}

    def reap(self, now: float) -> bool:
        """Notice that the process exited; returns True when it did."""
        if self.proc is None or self.proc.poll() is None:
            return False
        code = self.proc.returncode
        exit_code = code if code >= 0 else 128 - code
        reason = "Completed" if exit_code == 0 else "Error"
        self.current_termination = {
            "exitCode": exit_code, "reason": reason, "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(), "containerID": self.container_id(),
        }
        if self.killed_reason:
            self.current_termination["message"] = self.killed_reason
        cancel_cleanup(self._cleanup_handle)
        self.proc = None
        self.probes = {}
        # a container that ran for a long while starts its back-off afresh
        if time.time() - self.started_at > 2 * self.backoff.maximum:
            self.crash_failures = 0
        self.crash_failures += 1
        self.next_attempt = now + self.backoff.delay(self.crash_failures)
        return True

    def prepare_restart(self) -> None:
        """Move the finished run into lastState (the next launch counts the restart)."""
        if self.current_termination is not None:
            self.last_termination = self.current_termination
            self.current_termination = None

    def kill(self, grace: float, reason: str = "") -> None:
        if self.proc is not None:
            self.killed_reason = reason
            kill_group(self.proc, grace)

    # -- status ----------------------------------------------------------------------
    def status(self, init: bool = False) -> dict[str, Any]:
        if self.running:
            state: dict[str, Any] = {"running": {"startedAt": rfc3339(self.started_at)}}
        elif self.current_termination is not None:
            state = {"terminated": self.current_termination}
        else:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        status: dict[str, Any] = {
            "name": self.name, "image": self.image, "imageID": f"gameday-catalog://{self.image}",
            "ready": self.ready, "started": self.started, "restartCount": self.restart_count,
            "state": state, "lastState": {"terminated": self.last_termination} if self.last_termination else {},
        }
        if self.running or self.current_termination is not None:
            status["containerID"] = self.container_id()
        if init:  # an init container is "ready" once it completed successfully
            done = self.current_termination
            status["ready"] = bool(done is not None and done["exitCode"] == 0 and not self.running)
            status["started"] = self.running
        return status
