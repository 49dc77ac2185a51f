"""gameday's own Docker engine: its own socket and data root, containers on loopback, nothing left
behind when it stops, is interrupted, or when gameday is killed outright."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gameday.containers.engine import PREFIX, DockerEngine, _mounts_under, _processes_of
from gameday.lifecycle import free_port, pid_alive, port_open

pytestmark = [pytest.mark.docker]  # each test asks for docker_engine, which skips where none can run


def run_postgres(host: str, tag: str, port: int) -> str:
    """A container of the image built here on the host's loopback, by the docker CLI (as a person would)."""
    out = subprocess.run(["docker", "-H", host, "run", "-d", "--network", "host", "-e", "POSTGRES_PASSWORD=pw", tag,
                          "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}"],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def left_of(root: Path) -> tuple[bool, list[int], list[str]]:
    return root.exists(), [p for p in _processes_of(root) if pid_alive(p)], _mounts_under(root)


def test_an_engine_of_our_own_runs_containers_and_leaves_nothing_when_it_stops(docker_engine, pg_tag):
    with DockerEngine() as engine:
        root = engine.root
        assert root is not None and engine.host == f"unix://{root / 'docker.sock'}"
        assert not engine.host.endswith("/var/run/docker.sock") and root.name.startswith(f"gameday-{PREFIX}-")
        info = json.loads(subprocess.run(["docker", "-H", engine.host, "info", "--format", "{{json .}}"],
                                         capture_output=True, text=True, timeout=30, check=True).stdout)
        assert info["Driver"] == "vfs" and info["DockerRootDir"] == str(root / "data")
        networks = subprocess.run(["docker", "-H", engine.host, "network", "ls", "--format", "{{.Name}}"],
                                  capture_output=True, text=True, timeout=30, check=True).stdout.split()
        assert "bridge" not in networks  # no bridge, no iptables: host networking (loopback) or none
        # the image comes from the package fixture's engine's cache: imported, never pulled
        client = engine.client()
        try:
            from gameday.containers.postgres_image import ensure_image

            assert ensure_image(client) == (pg_tag, "cached")
        finally:
            client.close()
        port = free_port()
        run_postgres(engine.host, pg_tag, port)
        wait_for(lambda: port_open("127.0.0.1", port), 60, "the container's Postgres never listened")
        assert _processes_of(root)  # dockerd, containerd, the shim: all started from the folder
    exists, processes, mounts = left_of(root)
    assert (exists, processes, mounts) == (False, [], [])
    assert not port_open("127.0.0.1", port)


def engine_command(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "gameday.cli", "docker", "engine"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.fullmatch(r"export DOCKER_HOST=(unix://\S+)\n", line)
    assert found, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
    return proc, found.group(1)


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_an_interrupted_or_killed_engine_command_leaves_no_container_running(how, docker_engine, pg_tag):
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    proc, host = engine_command(env)
    root = Path(host.removeprefix("unix://")).parent
    try:
        port = free_port()
        run_postgres(host, pg_tag, port)
        wait_for(lambda: port_open("127.0.0.1", port), 60, "the container's Postgres never listened")
        proc.send_signal(getattr(signal, how))
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The container's processes end with the engine either way: dockerd is the init of its own PID
    # namespace, so the kernel ends everything in it when gameday is killed outright.
    wait_for(lambda: not port_open("127.0.0.1", port), 15, f"the container still listens after {how}")
    wait_for(lambda: not left_of(root)[1], 15, f"processes of the engine still run after {how}: {left_of(root)}")
    assert _mounts_under(root) == []  # the mounts went with the engine's mount namespace
    if how == "SIGINT":
        assert proc.returncode == 0 and not root.exists()
        return
    assert root.exists()  # nobody was left to delete it: the next engine sweeps it
    with DockerEngine():
        assert not root.exists()
