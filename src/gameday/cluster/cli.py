"""`gameday cluster build|up|down|status|kubeconfig`: the local cluster from a shell.

`up` leaves the cluster running in a detached supervisor (gameday.cluster.daemon) so
kubectl works from another shell; its state lives in <cache>/clusters/<name>/state.json.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gameday.cluster import build as builder
from gameday.cluster.daemon import read_state, state_dir
from gameday.console import err_console as console
from gameday.console import one_line_errors
from gameday.errors import EnvironmentNotReady
from gameday.lifecycle import pid_alive, tail, wait_until

UP_TIMEOUT_S = 300.0
DOWN_TIMEOUT_S = 60.0




def _progress(status: Any) -> Callable[[str], None]:
    """Log each build/start message and show it on the spinner line."""

    def report(message: str) -> None:
        console.log(message)
        status.update(message)

    return report


def _running_state(directory: Path) -> dict[str, Any] | None:
    state = read_state(directory)
    if state and state.get("status") in ("ready", "starting") and pid_alive(state.get("daemon_pid")):
        return state
    return None


@click.group("cluster")
@click.option("--name", default="default", show_default=True, help="name of the local cluster (its state dir)")
@click.pass_context
def cluster(ctx: click.Context, name: str) -> None:
    """The embedded local Kubernetes cluster (real etcd, apiserver, controller-manager, scheduler)."""
    ctx.obj = state_dir(name)  # a name, never a path: `--name ..` is refused (one line, exit 2)


@cluster.command("build")
@click.option("--version", default=None, help="Kubernetes version v1.X.Y (default: the pinned one)")
@click.option("--force", is_flag=True, help="rebuild even when the cache holds a build")
@one_line_errors
def build_command(version: str | None, force: bool) -> None:
    """Build etcd and the Kubernetes control-plane binaries into the cache (once per version)."""
    with console.status("building") as status:
        result = builder.build(version, _progress(status), force=force)
    sizes = ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in result.sizes.items())
    console.print(f"Kubernetes {result.version} + etcd {result.etcd_version} ready in {result.bin_dir} ({sizes})")


@cluster.command("up")
@click.option("--nodes", default=1, show_default=True, type=click.IntRange(0, 20), help="process-kubelet nodes")
@click.option("--version", default=None, help="Kubernetes version v1.X.Y (default: the pinned one)")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="project file whose images: the nodes run (default: the nearest gameday.yaml, else the demo's)")
@click.option("--images", "images", multiple=True, type=click.Path(path_type=Path),
              help="extra image catalog file (images: list), repeatable; later files win")
@click.option("--metrics-server", is_flag=True, help="also run metrics-server, for `kubectl top` (GAMEDAY_METRICS_SERVER=1)")
@click.pass_obj
@one_line_errors
def up(directory: Path, nodes: int, version: str | None, config: Path | None, images: tuple[Path, ...],
       metrics_server: bool) -> None:
    """Start the local cluster in the background and print its kubeconfig."""
    from gameday import project

    if metrics_server:
        os.environ["GAMEDAY_METRICS_SERVER"] = "1"  # the supervisor inherits it
    chosen = project.locate(config)
    project.load(chosen).catalog(*images)  # bad input is one line here, before anything starts
    state = _running_state(directory)
    if state:
        console.print(f"already running: {state.get('apiserver', '(starting)')}")
        click.echo(state.get("kubeconfig", ""))
        return
    with console.status("preparing binaries") as status:
        builder.ensure_binaries(version, _progress(status))
        shutil.rmtree(directory, ignore_errors=True)  # leftovers of a crashed run
        directory.mkdir(parents=True)
        status.update(f"starting control plane ({nodes} node(s))")
        argv = [sys.executable, "-m", "gameday.cluster.daemon", "--state-dir", str(directory), "--nodes", str(nodes)]
        if version:
            argv += ["--version", version]
        argv += ["--config", str(chosen)]
        for image_file in images:
            argv += ["--images", str(image_file.resolve())]
        log = directory / "daemon.log"
        with log.open("ab") as out:
            # Detached on purpose (own session, not registered for cleanup): it outlives this command.
            daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True, close_fds=True)

        def settled() -> dict[str, Any] | None:
            current = read_state(directory) or {}
            if current.get("status") in ("ready", "failed") or daemon.poll() is not None:
                return current or {"status": "failed", "error": f"supervisor exited with {daemon.returncode}"}
            return None

        try:
            state = wait_until(settled, timeout=UP_TIMEOUT_S, interval=0.3, what="local cluster",
                               logs=lambda: tail(log))
        except EnvironmentNotReady:
            _stop(directory)
            raise
    if state.get("status") != "ready":
        _stop(directory)
        raise EnvironmentNotReady(f"local cluster failed to start: {state.get('error', 'unknown')}",
                                  fix=f"see {log} (kept in the message above; state removed)")
    timings = state.get("timings", {})
    console.print(f"[green]running[/] {state['apiserver']} in {timings.get('total_s', 0):.1f}s"
                  + (f" (skipped: {', '.join(state['skipped'])})" if state.get("skipped") else ""))
    console.print(f"export KUBECONFIG={state['kubeconfig']}", highlight=False, soft_wrap=True)
    click.echo(state["kubeconfig"])


def _kill_recorded(state: dict[str, Any]) -> None:
    """SIGKILL component pids still alive after the supervisor is gone (only our binaries)."""
    for pid in (state.get("pids") or {}).values():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(builder.version_dir(None).parent).encode() in cmdline and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _is_our_daemon(pid: int) -> bool:
    """Is ``pid`` gameday's cluster supervisor (and not a process that reused a stale pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"gameday.cluster.daemon" in cmdline


def _stop(directory: Path) -> bool:
    """Stop the supervisor (and so the cluster) and remove the state dir; True if one was running."""
    state = read_state(directory) or {}
    pid = int(state.get("daemon_pid") or 0)
    was_running = pid_alive(pid) and _is_our_daemon(pid)  # a stale pid may now be anyone's process
    if was_running:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    _kill_recorded(state)
    shutil.rmtree(directory, ignore_errors=True)
    return was_running


@cluster.command("down")
@click.pass_obj
@one_line_errors
def down(directory: Path) -> None:
    """Stop the local cluster and remove its state, data and logs."""
    with console.status("stopping"):
        was_running = _stop(directory)
    console.print("stopped" if was_running else "not running (nothing to stop)")


@cluster.command("status")
@click.pass_obj
@one_line_errors
def status(directory: Path) -> None:
    """Say whether the local cluster runs, with its node count (exit 1 when not running)."""
    state = _running_state(directory)
    if not state:
        click.echo("not running")
        sys.exit(1)
    if state.get("status") != "ready":
        click.echo("starting")
        return
    from kubernetes import client

    from gameday.cluster.access import api_client
    from gameday.cluster.local import ready_node_count

    api = api_client(state["kubeconfig"])
    try:
        total = len(client.CoreV1Api(api).list_node(_request_timeout=10).items)
        ready = ready_node_count(api)
    except Exception as exc:  # noqa: BLE001 - report, don't trace
        raise EnvironmentNotReady(f"cluster supervisor runs but the API server does not answer: {exc}",
                                  fix="run `gameday cluster down` then `up`") from None
    finally:
        api.close()
    click.echo(f"running {state['apiserver']} nodes: {total} ({ready} Ready) kubeconfig: {state['kubeconfig']}")


@cluster.command("kubeconfig")
@click.pass_obj
@one_line_errors
def kubeconfig_command(directory: Path) -> None:
    """Print the path of the running cluster's kubeconfig."""
    state = _running_state(directory)
    if not state or not state.get("kubeconfig"):
        raise EnvironmentNotReady("the local cluster is not running", fix="start it with `gameday cluster up`")
    click.echo(state["kubeconfig"])


@cluster.command("services")
@click.pass_obj
@one_line_errors
def services_command(directory: Path) -> None:
    """List each Service port and the local address the service proxy serves it on."""
    state = _running_state(directory)
    if not state:
        raise EnvironmentNotReady("the local cluster is not running", fix="start it with `gameday cluster up`")
    path = state.get("services_file")
    if not path:
        raise EnvironmentNotReady("the local cluster runs without a service proxy", fix="restart it: gameday cluster down; up")
    try:
        services = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        services = {}
    if not services:
        click.echo("no services yet")
    for service, address in sorted(services.items()):
        click.echo(f"{service:<40} http://{address}")


if __name__ == "__main__":
    cluster()
