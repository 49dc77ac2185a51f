"""The local AWS stand-in: moto in server mode, with real ECS task processes behind it.

>>> with MotoServer() as aws:                      # doctest: +SKIP
...     ecs = aws.client("ecs")
...     os.environ.update(aws.env())              # the aws CLI and boto3 now talk to moto

It runs ``python -m gameday.aws.host`` (moto's ThreadedMotoServer plus the task runner,
see :mod:`gameday.aws.task_runner`) on a free 127.0.0.1 port.  The credentials are
throwaway values: moto accepts anything, and real credentials must never reach it.
"""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

from gameday import settings
from gameday.lifecycle import Provider, free_port, spawn, stop_process, tail, temp_dir, wait_until

THROWAWAY_KEY_ID = "testing"
THROWAWAY_SECRET = "testing"


class MotoServer(Provider):
    """moto's ECS/RDS/EC2 API on 127.0.0.1; with ``run_tasks`` the ECS tasks are real processes."""

    name = "moto"
    rehearsal = True  # everything behind a local moto is a rehearsal target by construction

    def __init__(
        self,
        *,
        images: list[Path] | None = None,
        config: Path | None = None,
        run_tasks: bool = True,
        region: str | None = None,
        port: int | None = None,
        start_timeout: float | None = None,
        interval: float = 0.5,
        journal: Any = None,  # accepted like every provider's; moto records nothing itself
    ) -> None:
        self.images = [Path(p) for p in images or []]
        self.config = config  # the project file whose images: the task runner runs
        self.run_tasks = run_tasks
        self.region = region or settings.get("aws-region")
        self.port = port
        self.start_timeout = start_timeout or settings.get_float("moto-start-timeout")
        self.interval = interval
        self.state_dir: Path | None = None
        self._proc: Any = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> MotoServer:
        if self._proc is not None:
            return self
        self.port = self.port or free_port()
        self.state_dir = temp_dir("moto")
        argv = [sys.executable, "-m", "gameday.aws.host", "--port", str(self.port),
                "--state-dir", str(self.state_dir), "--interval", str(self.interval)]
        for path in self.images:
            argv += ["--images", str(path.resolve())]
        if self.config is not None:
            argv += ["--config", str(Path(self.config).resolve())]
        if not self.run_tasks:
            argv.append("--no-tasks")
        env = {**os.environ, **self.env(), "PYTHONPATH": _pythonpath()}
        self._proc = spawn(argv, log=self.log_path, env=env, grace=20.0, die_with_harness=True,
                           part="moto (the AWS API)", shared=True)
        wait_until(self._ready, timeout=self.start_timeout, interval=0.1, what=f"moto server on port {self.port}",
                   logs=lambda: tail(self.log_path))
        return self

    def _ready(self) -> bool:
        if self._proc.poll() is not None:
            raise OSError(f"moto host exited with {self._proc.returncode}")
        assert self.state_dir is not None
        if not (self.state_dir / "ready").exists():
            return False
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process(proc, grace=20.0)
        self._kill_leftover_tasks()

    def _kill_leftover_tasks(self) -> None:
        """If the host was killed hard, its task processes may remain: end them by pid."""
        if self.state_dir is None:
            return
        try:
            pids = [int(p) for p in (self.state_dir / "tasks.pids").read_text().split()]
        except (OSError, ValueError):
            return
        for pid in pids:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each task runs in its own process group (= its pid)

    # -- endpoints --------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir / "moto.log"

    def task_log_dir(self) -> Path | None:
        return self.state_dir / "tasks" if self.state_dir else None

    def endpoints(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint, "region": self.region}

    def env(self) -> dict[str, str]:
        """Environment for the aws CLI, boto3 and any child process (throwaway credentials)."""
        env = {
            "AWS_ACCESS_KEY_ID": THROWAWAY_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": THROWAWAY_SECRET,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        if self.port:
            env["AWS_ENDPOINT_URL"] = self.endpoint
        return env

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=THROWAWAY_KEY_ID,
            aws_secret_access_key=THROWAWAY_SECRET,
        )


def _pythonpath() -> str:
    """Make ``gameday`` importable in the host even when running from a checkout."""
    src = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (src, existing) if p)
