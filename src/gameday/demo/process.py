"""DemoProcess: one demo service process on a 127.x address, as a provider.

    with DemoProcess(version="1.0.0", fault="error-rate=0.5") as demo:
        urllib.request.urlopen(demo.url + "/api/orders")

The kubelet and the ECS task runner start demo processes through the image catalog;
this provider is for tests, benchmarks and quick rehearsals without a cluster.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.errors import EnvironmentNotReady
from gameday.lifecycle import Provider, free_port, spawn, stop_process, tail, temp_dir, wait_until


def random_loopback() -> str:
    """A 127.x.y.z address other than 127.0.0.1, so concurrent services do not collide."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class DemoProcess(Provider):
    name = "demo"

    def __init__(
        self,
        *,
        version: str = "1.0.0",
        fault: str = "",
        host: str | None = None,
        port: int | None = None,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
        start_timeout: float = 10.0,
        log: Path | None = None,
    ) -> None:
        self.version = version
        self.fault = fault
        self.host = host or random_loopback()
        self.port = port
        self.database_url = database_url
        self.extra_env = dict(env or {})
        self.wait_ready = wait_ready
        self.start_timeout = start_timeout
        self.log = log
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DemoProcess:
        if self.port is None:
            self.port = free_port(self.host)
        if self.log is None:
            self.log = temp_dir("demo") / "demo.log"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DEMO_FAULT")}
        env.update(HOST=self.host, PORT=str(self.port), DEMO_VERSION=self.version, DEMO_FAULT=self.fault)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        self.proc = spawn([sys.executable, "-m", "gameday.demo"], log=self.log, env=env, grace=10,
                          die_with_harness=True)
        if self.wait_ready:
            wait_until(self._healthy, timeout=self.start_timeout, what=f"demo {self.version} on {self.url}",
                       logs=lambda: tail(self.log) if self.log else "")
        return self

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise EnvironmentNotReady(f"demo {self.version} exited with code {self.proc.returncode}: "
                                      f"{tail(self.log, 3) if self.log else ''}")
        with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
            return response.status == 200

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, grace=10)

    def endpoints(self) -> dict[str, Any]:
        return {"url": self.url, "host": self.host, "port": self.port, "version": self.version}

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 5.0) -> Reply:
        """One HTTP request on a fresh connection; ``body`` (if any) is sent as JSON."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            payload = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def logs(self) -> str:
        return tail(self.log, 200) if self.log else ""
