"""The detached supervisor behind `gameday cluster up`: keeps a LocalCluster alive after the CLI exits.

    python -m gameday.cluster.daemon --state-dir DIR [--nodes N] [--version V] [--config FILE] [--images FILE]...

It writes DIR/state.json (status starting -> ready | failed, pids, ports, kubeconfig path)
and DIR/kubeconfig, then waits for SIGTERM/SIGINT/SIGHUP and stops every process it
started.  Its components die with it (PDEATHSIG), so even a SIGKILLed daemon leaves no
orphan control plane.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gameday import settings
from gameday.errors import GameDayError

STATE_FILE = "state.json"


def state_dir(name: str = "default") -> Path:
    from gameday.paths import safe_name

    return Path(settings.get("cache")).expanduser() / "clusters" / safe_name(name, "cluster name")


def write_state(directory: Path, state: dict[str, Any]) -> None:
    # Write-then-rename so a reader never sees half a file.
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(directory / STATE_FILE)


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return None


def run(directory: Path, nodes: int, version: str | None, config: Path | None = None,
        images: list[Path] | None = None) -> int:
    from gameday import project
    from gameday.cluster.local import LocalCluster

    stop = threading.Event()
    ready = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        if not ready.is_set():
            raise SystemExit(128 + signum)  # abort a start in progress; `finally` cleans up

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    base: dict[str, Any] = {"daemon_pid": os.getpid(), "nodes": nodes, "started_at": time.time()}
    write_state(directory, {**base, "status": "starting"})
    cluster = None
    try:
        catalog = project.load(config).catalog(*(images or []))
        cluster = LocalCluster(nodes=nodes, workdir=directory / "cluster", version=version, catalog=catalog,
                               progress=lambda message: print(message, flush=True))
        cluster.start()
        kubeconfig = directory / "kubeconfig"
        shutil.copyfile(cluster.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        endpoints = cluster.endpoints()
        write_state(directory, {
            **base, "status": "ready", "kubeconfig": str(kubeconfig), "apiserver": endpoints["apiserver"],
            "ports": endpoints["ports"], "pids": endpoints["pids"], "workdir": endpoints["workdir"],
            "logs": endpoints["logs"], "timings": cluster.timings, "skipped": cluster.skipped,
            "services_file": endpoints.get("proxy", {}).get("services_file"),
        })
        ready.set()
        print(f"ready: {endpoints['apiserver']} (kubeconfig {kubeconfig})", flush=True)
        while not stop.wait(1.0):
            plane = cluster.control_plane
            dead = [name for name, proc in (plane.processes.items() if plane else [])
                    if proc.poll() is not None]
            if dead:
                print(f"component(s) exited: {', '.join(dead)}; stopping", flush=True)
                write_state(directory, {**base, "status": "failed", "error": f"{', '.join(dead)} exited"})
                return 1
        return 0
    except GameDayError as exc:
        print(f"error: {exc.one_line()}", flush=True)
        write_state(directory, {**base, "status": "failed", "error": exc.one_line()})
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the CLI reads the reason from state.json
        print(f"error: {exc!r}", flush=True)
        write_state(directory, {**base, "status": "failed", "error": repr(exc)})
        return 2
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(directory / "cluster", ignore_errors=True)
        print("stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gameday.cluster.daemon")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--version", default=None)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--images", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    return run(args.state_dir, args.nodes, args.version, args.config, args.images)


if __name__ == "__main__":
    sys.exit(main())
