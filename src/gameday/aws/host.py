"""``python -m gameday.aws.host``: moto's server and the ECS task runner in one process.

moto's backend objects can only be reached from inside the process that serves the
API, so this process runs moto's ThreadedMotoServer in a thread, installs the hooks of
:mod:`gameday.aws.moto_hooks` and runs the :class:`~gameday.aws.task_runner.TaskRunner`.
:class:`gameday.aws.moto_server.MotoServer` starts it; on SIGTERM (or when its parent
dies) it stops every task process, then moto.

It writes into ``--state-dir``: ``ready`` once serving, ``tasks.pids`` (live task process
ids, so the parent can kill leftovers if this process is killed hard), ``tasks/*.log``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path

from gameday import lifecycle, project
from gameday.aws import moto_hooks
from gameday.aws.task_runner import TaskRunner


def _watch_parent(parent: int) -> None:
    """Stop when the process that started us is gone: no orphaned tasks."""
    while True:
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gameday.aws.host")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--images", type=Path, action="append", default=[], help="extra image catalog")
    parser.add_argument("--config", type=Path, default=None, help="project file whose images: tasks run")
    parser.add_argument("--interval", type=float, default=0.5, help="task runner poll interval, seconds")
    parser.add_argument("--no-tasks", action="store_true", help="API state only, no task runner")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from moto.server import ThreadedMotoServer

    lifecycle.install_signal_handlers()
    signal.signal(signal.SIGINT, signal.getsignal(signal.SIGTERM))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    runner: TaskRunner | None = None
    if not args.no_tasks:
        catalog = project.load(args.config).catalog(*args.images)
        runner = TaskRunner(catalog, args.state_dir / "tasks", moto_hooks.ecs_backends, interval=args.interval)
        moto_hooks.install(runner.on_service_changed)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    lifecycle.on_cleanup(server.stop)
    if runner is not None:
        runner.start()
        lifecycle.on_cleanup(runner.stop)  # runs before server.stop: cleanups go newest first
    (args.state_dir / "ready").write_text(str(os.getpid()))
    pids_file = args.state_dir / "tasks.pids"
    while True:
        if runner is not None:
            pids = runner.task_pids()
            pids_file.write_text("".join(f"{p}\n" for p in pids))
        time.sleep(1.0)


if __name__ == "__main__":
    raise SystemExit(main())
