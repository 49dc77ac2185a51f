"""The locustfile for declared requests: the project file's request list, run by weight.

Run by LoadGenerator as ``locust -f <this file>,<gameday/load/recorder.py> --headless ...``.
Settings arrive by env: ``GAMEDAY_LOAD_REQUESTS`` (a JSON list of requests, each
``{"method", "path", "body", "headers", "weight", "expect", "name"}``, as
gameday.load.RequestSpec.to_data writes them), ``GAMEDAY_LOAD_USER_RATE`` (requests per
second per user, 0 = no pause), ``GAMEDAY_LOAD_TIMEOUT`` (seconds before a request counts
as a connection error).

A response whose status is not expected (``expect``; empty: any status below 400) is
marked failed, with a reason naming the status and the route.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, constant, constant_throughput

REQUESTS: list[dict[str, Any]] = json.loads(os.environ.get("GAMEDAY_LOAD_REQUESTS") or "[]")
USER_RATE = float(os.environ.get("GAMEDAY_LOAD_USER_RATE") or "10")
TIMEOUT = float(os.environ.get("GAMEDAY_LOAD_TIMEOUT") or "5")


def declared_task(spec: dict[str, Any]) -> Callable[[FastHttpUser], None]:
    method, path = str(spec.get("method") or "GET").upper(), str(spec["path"])
    route = str(spec.get("name") or path)
    expect = frozenset(int(s) for s in spec.get("expect") or ())
    wanted = ", ".join(map(str, sorted(expect))) if expect else "< 400"
    options: dict[str, Any] = {"name": route, "catch_response": True}
    if spec.get("body") is not None:
        options["json"] = spec["body"]
    if spec.get("headers"):
        options["headers"] = dict(spec["headers"])

    def task(user: FastHttpUser) -> None:
        with user.client.request(method, path, **options) as response:
            status = response.status_code
            if not status:
                return  # no response: locust reports the connection error itself
            if (status in expect) if expect else status < 400:
                response.success()
            else:
                response.failure(f"status {status} from {method} {route} (expected {wanted})")

    task.__name__ = f"{method} {route}"
    return task


class DeclaredRequests(FastHttpUser):
    """Each task one declared request, picked in proportion to its weight."""

    wait_time = constant_throughput(USER_RATE) if USER_RATE > 0 else constant(0)
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT
    # A task repeated ``weight`` times, which is what locust makes of a {task: weight} dict.
    tasks: list[Any] = [task for spec in REQUESTS for task in [declared_task(spec)] * int(spec.get("weight") or 1)]
