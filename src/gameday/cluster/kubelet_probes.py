"""Readiness, liveness and startup probes, run for real against a pod's 127.x address.

Each probe kind (httpGet, tcpSocket, exec) is one function in ``HANDLERS``; ``ProbeState``
applies the Kubernetes counting rules (initialDelaySeconds, periodSeconds,
timeoutSeconds, successThreshold, failureThreshold).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProbeTarget:
    """Where a container lives: its loopback host, named ports, env and work dir (for exec)."""

    host: str
    ports: dict[str, int]
    env: dict[str, str]
    cwd: str


@dataclass
class ProbeSpec:
    kind: str  # readiness | liveness | startup
    action: str  # httpGet | tcpSocket | exec | grpc
    config: dict[str, Any]
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, kind: str, spec: dict[str, Any] | None) -> ProbeSpec | None:
        if not spec:
            return None
        action = next((a for a in ("httpGet", "tcpSocket", "exec", "grpc") if spec.get(a)), "")
        if not action:
            return None
        return cls(
            kind=kind, action=action, config=spec[action],
            initial_delay=float(spec.get("initialDelaySeconds") or 0),
            period=float(spec.get("periodSeconds") or 10),
            timeout=float(spec.get("timeoutSeconds") or 1),
            # liveness and startup must use successThreshold 1 (API validation enforces it)
            success_threshold=int(spec.get("successThreshold") or 1),
            failure_threshold=int(spec.get("failureThreshold") or 3),
        )


def _port(value: Any, target: ProbeTarget) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    if value in target.ports:
        return target.ports[value]
    raise ValueError(f"unknown named port {value!r}")


def _host(config: dict[str, Any], target: ProbeTarget) -> str:
    # Only loopback is ever dialled: a probe naming another host still goes to the pod.
    host = config.get("host")
    try:
        if host and ipaddress.ip_address(host).is_loopback:
            return str(host)
    except ValueError:
        pass
    return target.host


def dial_error(host: str, port: int, exc: OSError) -> str:
    """An OSError worded as Go's net package words it (what kubelet probe output shows)."""
    if isinstance(exc, TimeoutError):
        return f"dial tcp {host}:{port}: i/o timeout"
    return f"dial tcp {host}:{port}: connect: {(exc.strerror or str(exc)).lower()}"


def probe_http(config: dict[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    host, port, path = _host(config, target), _port(config.get("port"), target), config.get("path") or "/"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    url = f"http://{host}:{port}{path}"
    try:
        headers = {h["name"]: h["value"] for h in config.get("httpHeaders") or []}
        headers.setdefault("User-Agent", "kube-probe/1.34")
        try:
            conn.connect()
        except OSError as exc:
            return False, f'Get "{url}": {dial_error(host, port, exc)}'
        try:
            conn.request("GET", path, headers=headers)
            status = conn.getresponse().status
        except TimeoutError:
            return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
        return 200 <= status < 400, f"HTTP probe failed with statuscode: {status}"
    finally:
        conn.close()


def probe_tcp(config: dict[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    host, port = _host(config, target), _port(config.get("port"), target)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, dial_error(host, port, exc)


def probe_exec(config: dict[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    command = [str(c) for c in config.get("command") or []]
    try:
        done = subprocess.run(command, env=target.env, cwd=target.cwd, capture_output=True,
                              timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        return False, f"command timed out after {timeout:g}s"
    return done.returncode == 0, done.stdout.decode(errors="replace")[-200:]


HANDLERS: dict[str, Callable[[dict[str, Any], ProbeTarget, float], tuple[bool, str]]] = {
    "httpGet": probe_http,
    "tcpSocket": probe_tcp,
    "exec": probe_exec,
}


def run_probe(spec: ProbeSpec, target: ProbeTarget) -> tuple[bool, str]:
    handler = HANDLERS.get(spec.action)
    if handler is None:
        return True, f"{spec.action} probes are not supported by the process kubelet; treated as success"
    try:
        return handler(spec.config, target, spec.timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return False, f"{spec.kind} probe failed: {exc}"


@dataclass
class ProbeState:
    """Counting state of one probe for one container run (reset on restart)."""

    spec: ProbeSpec
    started_at: float
    result: bool | None = None  # None: no verdict yet
    successes: int = 0
    failures: int = 0
    next_due: float = field(default=0.0)
    message: str = ""

    def __post_init__(self) -> None:
        self.next_due = self.started_at + self.spec.initial_delay

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def record(self, ok: bool, message: str, now: float) -> bool:
        """Count one probe outcome; returns True when the verdict changed."""
        self.next_due = now + self.spec.period
        before = self.result
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.spec.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            self.message = message
            if self.failures >= self.spec.failure_threshold:
                self.result = False
        return self.result != before

    def check(self, target: ProbeTarget, now: float | None = None) -> bool:
        ok, message = run_probe(self.spec, target)
        return self.record(ok, message, time.monotonic() if now is None else now)
