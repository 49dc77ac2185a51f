"""A Docker engine of gameday's own, for a machine (or CI runner) where none runs.

    with DockerEngine(journal=journal) as engine:      # root, and Debian's docker.io installed
        os.environ.update(engine.environ())              # DOCKER_HOST=unix://.../docker.sock
        ...                                              # the container providers use it

``dockerd`` runs on a socket, data root and exec root inside a folder gameday owns (never the
machine's /var/run/docker.sock or /var/lib/docker, never a daemon somebody else runs), with the
vfs storage driver, no bridge, no iptables and no IP masquerading: containers use the host's
network (and then listen on 127.0.0.1 only) or none.  There is no registry to pull from, so
images are built here (see :mod:`gameday.containers.postgres_image`).

stop() removes every container, stops the daemon and deletes the folder.  dockerd runs as the
init of a PID and mount namespace of its own (``unshare``), so if gameday is killed outright the
daemon dies with it (PR_SET_PDEATHSIG) and the kernel ends everything it started and unmounts
what it mounted; the next engine started deletes the folder left behind (and, where there is no
``unshare``, the processes still running from it and the mounts under it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal
from gameday.lifecycle import OWNER_FILE, Provider, pid_alive, spawn, stop_process, tail, temp_dir, wait_until

PREFIX = "docker"  # gameday-docker-* under the temp folder


class DockerEngine(Provider):
    name = "docker-engine"

    def __init__(self, *, journal: Journal | None = None, start_timeout: float = 60.0) -> None:
        self.journal = journal
        self.start_timeout = start_timeout
        self.root: Path | None = None
        self.start_s: float | None = None
        self._proc: Any = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> DockerEngine:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EnvironmentNotReady("dockerd is not installed, so gameday cannot start a Docker engine of its own",
                                      fix="as root, `./dev setup` installs Debian's docker.io; or start Docker "
                                          "yourself and set DOCKER_HOST")
        if os.geteuid() != 0:
            raise EnvironmentNotReady("a Docker engine of gameday's own needs root (dockerd runs as root)",
                                      fix="run as root, or start Docker yourself and set DOCKER_HOST")
        sweep_stale_engines()
        began = time.monotonic()
        self.root = temp_dir(PREFIX)
        (self.root / "daemon.json").write_text("{}\n")  # never the machine's /etc/docker/daemon.json
        # In a PID and mount namespace of its own, dockerd is the namespace's init: when it dies, even
        # because gameday was killed outright, the kernel kills every process in it (containerd, the shims,
        # the containers), and the mounts it made (shm, netns) go with the namespace.
        fence = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
                 "--mount-proc"] if shutil.which("unshare") else []
        self._proc = spawn([*fence, dockerd, "--host", self.host, "--data-root", str(self.root / "data"),
                            "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
                            "--config-file", str(self.root / "daemon.json"), "--storage-driver=vfs",
                            "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false"],
                           log=self.log, grace=20.0, die_with_harness=True, part="the Docker engine (dockerd)")
        from docker.errors import DockerException

        wait_until(self._answers, timeout=self.start_timeout, interval=0.1, what="the Docker engine (dockerd)",
                   logs=lambda: tail(self.log), transient=(OSError, DockerException))
        self.start_s = time.monotonic() - began
        if self.journal is not None:
            self.journal.event("docker-engine", f"Docker engine of gameday's own on {self.host} "
                               f"(ready in {self.start_s:.2f} s)", host=self.host, ready_s=round(self.start_s, 3))
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(Exception):  # a daemon that no longer answers has nothing to remove
                client = self.client()
                try:
                    for container in client.containers.list(all=True):
                        container.remove(force=True)
                finally:
                    client.close()
            stop_process(proc, grace=20.0)
        root, self.root = self.root, None
        if root is not None:
            _remove_engine_folder(root)

    def endpoints(self) -> dict[str, Any]:
        return {"docker_host": self.host}

    # -- what users of the engine need ------------------------------------------
    @property
    def host(self) -> str:
        if self.root is None:
            raise EnvironmentNotReady("the Docker engine is not started")
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def log(self) -> Path:
        assert self.root is not None
        return self.root / "dockerd.log"

    def environ(self) -> dict[str, str]:
        """What a process needs to use this engine (docker CLI, the Docker SDK, testcontainers)."""
        return {"DOCKER_HOST": self.host}

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)

    def _answers(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()


# -- what a killed run leaves behind ---------------------------------------------------------------
def _processes_of(root: Path) -> list[int]:
    """Processes started from an engine folder: the daemon, containerd and the shims (which name the
    folder on their command line) and the containers' own processes (whose root is inside it)."""
    found = []
    needle = str(root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() or os.readlink(entry / "root").startswith(str(root)):
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return found


def _mounts_under(root: Path) -> list[str]:
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(root) or point.startswith(f"{root}/"):
                mounts.append(point)
    return sorted(mounts, key=len, reverse=True)  # deepest first


def _remove_engine_folder(root: Path) -> None:
    """Kill what still runs from ``root``, unmount what is mounted under it, delete it."""
    for _ in range(3):
        pids = _processes_of(root)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
    for point in _mounts_under(root):
        _unmount(point)
    shutil.rmtree(root, ignore_errors=True)


def _unmount(point: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(point.encode(), 2)  # MNT_DETACH: whatever still holds it, the folder can go


def sweep_stale_engines(base: Path | None = None) -> list[Path]:
    """Remove the folders of engines whose gameday process is gone (killed: SIGKILL, a crash),
    with the processes and mounts they left behind."""
    import tempfile

    swept = []
    for root in sorted((base or Path(tempfile.gettempdir())).glob(f"gameday-{PREFIX}-*")):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(owner):
            _remove_engine_folder(root)
            swept.append(root)
    return swept
