"""ECS container health checks, run for real against a task's local process.

A task definition's ``healthCheck`` is ``{"command": ["CMD-SHELL", "curl -f
http://localhost:8080/ready || exit 1"], "interval": 30, "timeout": 5, "retries": 3,
"startPeriod": 0}``.  Inside a container ``localhost`` is the task's own network
namespace; here every task has its own 127.x address instead, so ``localhost`` and
``127.0.0.1`` in the command are rewritten to the task's address before it runs.

State follows Docker (which the ECS agent relies on): the first probe runs one
``interval`` after start, failures inside ``startPeriod`` do not count, ``retries``
consecutive failures make the container UNHEALTHY, one success makes it HEALTHY.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Any

from gameday.errors import ConfigError

_LOCAL_HOST = re.compile(r"(?<![\w.])(localhost|127\.0\.0\.1|0\.0\.0\.0)(?![\w.])")

UNKNOWN, HEALTHY, UNHEALTHY = "UNKNOWN", "HEALTHY", "UNHEALTHY"


@dataclass(frozen=True)
class HealthCheck:
    argv: list[str]
    interval: float = 30.0
    timeout: float = 5.0
    retries: int = 3
    start_period: float = 0.0

    @classmethod
    def from_container(cls, container: dict[str, Any], host: str) -> HealthCheck | None:
        """The check of one container definition, aimed at ``host``; None when it has none."""
        spec = container.get("healthCheck") or container.get("health_check")
        if not spec:
            return None
        command = spec.get("command") or []
        name = container.get("name", "?")
        if not command or command[0] == "NONE":
            return None
        kind, rest = command[0], [_LOCAL_HOST.sub(host, part) for part in command[1:]]
        if kind == "CMD-SHELL":
            argv = ["/bin/sh", "-c", " ".join(rest)]
        elif kind == "CMD":
            argv = rest
        else:
            # ECS accepts a bare command as CMD-SHELL-less exec form too.
            argv = [_LOCAL_HOST.sub(host, part) for part in command]
        if not argv:
            raise ConfigError(f"container {name}: healthCheck command is empty", fix='e.g. ["CMD-SHELL", "curl -f http://localhost:8080/ready"]')
        return cls(
            argv=argv,
            interval=float(spec.get("interval", 30)),
            timeout=float(spec.get("timeout", 5)),
            retries=int(spec.get("retries", 3)),
            start_period=float(spec.get("startPeriod", 0)),
        )

    def run(self, env: dict[str, str]) -> tuple[bool, str]:
        """Run the probe once: (passed, short output)."""
        try:
            done = subprocess.run(
                self.argv, env=env, capture_output=True, timeout=self.timeout, stdin=subprocess.DEVNULL, check=False
            )
        except subprocess.TimeoutExpired:
            return False, f"timed out after {self.timeout:g}s"
        except OSError as exc:
            return False, str(exc)
        output = (done.stdout + done.stderr).decode(errors="replace").strip()[-200:]
        return done.returncode == 0, output or f"exit {done.returncode}"


@dataclass
class HealthState:
    """Docker's health bookkeeping for one container."""

    check: HealthCheck
    started: float
    status: str = UNKNOWN
    failures: int = 0
    next_probe: float = 0.0
    last_output: str = ""

    def __post_init__(self) -> None:
        self.next_probe = self.started + self.check.interval

    def due(self, now: float) -> bool:
        return now >= self.next_probe

    def record(self, now: float, passed: bool, output: str) -> None:
        self.next_probe = now + self.check.interval
        self.last_output = output
        if passed:
            self.status, self.failures = HEALTHY, 0
            return
        if now - self.started < self.check.start_period and self.status != HEALTHY:
            return  # the start period forgives failures until the first success
        self.failures += 1
        if self.failures >= self.check.retries:
            self.status = UNHEALTHY
