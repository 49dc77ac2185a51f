"""A load balancer in front of an ECS service's tasks, on 127.0.0.1, as an ALB target group is.

Its targets are the service's tasks the ECS API lists as RUNNING and HEALTHY, at the host
address and port of their network bindings; the list is read every ``REFRESH_S`` (a
cadence: a task that turns healthy or stops takes or leaves traffic up to that much later).
Requests are balanced one at a time, round robin, over keep-alive connections to the
targets (the cluster proxy's HTTP relay); a refused connect falls back to the next target.
No target: 503, as an ALB with an empty target group answers.

    with TaskBalancer(ecs, "shop", "orders") as lb:
        LoadGenerator(lb.url, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from typing import Any

from gameday.cluster.proxy_http import Address, BackendPool, NotHTTP, relay_requests, set_nodelay
from gameday.errors import EnvironmentNotReady
from gameday.lifecycle import Provider, ThreadPart, forget_part, watch_part

log = logging.getLogger("gameday.aws.balancer")

REFRESH_S = 0.25  # how often the targets are read from the ECS API
START_TIMEOUT_S = 10.0


def healthy_targets(ecs: Any, cluster: str, service: str) -> list[Address]:
    """The host address and port of each RUNNING, HEALTHY task of ``service``."""
    arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING").get("taskArns", [])
    targets: list[Address] = []
    for start in range(0, len(arns), 100):
        for task in ecs.describe_tasks(cluster=cluster, tasks=arns[start:start + 100]).get("tasks", []):
            if task.get("lastStatus") != "RUNNING" or task.get("healthStatus") != "HEALTHY":
                continue
            for container in task.get("containers", []):
                for binding in container.get("networkBindings", []):
                    if binding.get("bindIP") and binding.get("hostPort"):
                        targets.append((str(binding["bindIP"]), int(binding["hostPort"])))
    return sorted(targets)


class TaskBalancer(Provider):
    name = "load balancer"

    def __init__(self, ecs: Any, cluster: str, service: str) -> None:
        self.ecs, self.cluster, self.service = ecs, cluster, service
        self.targets: list[Address] = []
        self.port: int | None = None
        self.pool = BackendPool()
        self._turn = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._part: ThreadPart | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._refresher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TaskBalancer:
        self.refresh()
        self._thread = threading.Thread(target=self._serve, name="gameday-ecs-balancer", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error is not None:
            self.stop()
            raise EnvironmentNotReady(f"the load balancer in front of ECS service {self.service} did not start: "
                                      f"{self._error or 'no listener'}")
        self._refresher = threading.Thread(target=self._refresh_forever, name="gameday-ecs-targets", daemon=True)
        self._refresher.start()
        self._part = ThreadPart(self._thread)
        watch_part("the ECS load balancer", self._part)
        return self

    def stop(self) -> None:
        forget_part(self._part)
        self._stopping.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        for thread in (self._thread, self._refresher):
            if thread is not None and thread is not threading.current_thread():
                thread.join(5)

    def endpoints(self) -> dict[str, Any]:
        return {"url": self.url, "targets": [f"{h}:{p}" for h, p in self.targets]}

    # -- targets ------------------------------------------------------------------------------
    def refresh(self) -> list[Address]:
        """Read the targets now (the event loop, once running, owns the list and the pool)."""
        targets = healthy_targets(self.ecs, self.cluster, self.service)
        loop = self._loop
        if loop is None or loop.is_closed():
            self.targets = targets
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._set_targets, targets)
        return targets

    def _refresh_forever(self) -> None:
        while not self._stopping.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - the API blinking keeps the last known targets
                log.warning("could not read the targets of %s: %s", self.service, exc)

    def _set_targets(self, targets: list[Address]) -> None:
        self.targets = targets
        self.pool.retain(set(targets))  # a target that left keeps no idle connection

    def _pick(self) -> list[Address] | None:
        targets = self.targets
        if not targets:
            return None
        first = next(self._turn) % len(targets)
        return targets[first:] + targets[:first]

    # -- serving (its own event loop thread) ----------------------------------------------------
    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            server = loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            loop.run_forever()
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            self.pool.close()
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        set_nodelay(writer)
        try:
            await relay_requests(reader, writer, self._pick, self.pool)
        except (OSError, ValueError, IndexError, NotHTTP, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass  # a broken request or response ends this client connection only
        finally:
            writer.close()


def wait_for_targets(balancer: TaskBalancer, count: int, timeout: float) -> float:
    """Until the balancer has ``count`` healthy targets; the seconds it took."""
    began = time.monotonic()
    while len(found := balancer.refresh()) < count:
        if time.monotonic() - began > timeout:
            raise EnvironmentNotReady(f"the load balancer has {len(found)} healthy targets after "
                                      f"{timeout:g}s, {count} expected")
        time.sleep(REFRESH_S)
    return time.monotonic() - began
