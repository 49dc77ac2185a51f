"""The locustfile gameday runs: an orders workload that records every request.

Run by LoadGenerator as ``locust -f <this file> --headless ...``.  Settings arrive by env:
``GAMEDAY_LOAD_RECORDS`` (JSONL file to append one record per request; unset = no
recording), ``GAMEDAY_LOAD_USER_RATE`` (requests per second per user, 0 = no pause),
``GAMEDAY_LOAD_TIMEOUT`` (seconds before a request counts as a connection error).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from typing import Any

from locust import FastHttpUser, constant, constant_throughput, events, task

from gameday.load.records import HEADER, NO_VERSION, RequestRecord

RECORDS = os.environ.get("GAMEDAY_LOAD_RECORDS", "")
USER_RATE = float(os.environ.get("GAMEDAY_LOAD_USER_RATE", "10"))
TIMEOUT = float(os.environ.get("GAMEDAY_LOAD_TIMEOUT", "5"))


def _record_request(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None) if status else None
    version = (headers.get(HEADER) if headers else None) or NO_VERSION
    error = None
    if status == 0 and exception is not None:
        error = f"{type(exception).__name__}: {exception}"[:200]
    record = RequestRecord(
        ts=time.time(), method=request_type, path=name, status=status,
        latency_ms=round(response_time, 3), version=version, error=error,
    )
    _out.write(record.to_json() + "\n")


if RECORDS:
    # Line-buffered: each record reaches the file as its line ends, so a trigger polling
    # the file sees requests within milliseconds.
    _out = open(RECORDS, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as locust
    events.request.add_listener(_record_request)
    events.quit.add_listener(lambda **_: _out.close())


class OrdersUser(FastHttpUser):
    """Mostly reads, some writes: 60 % list, 30 % get by id, 10 % create."""

    wait_time = constant_throughput(USER_RATE) if USER_RATE > 0 else constant(0)
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT

    def on_start(self) -> None:
        self.order_ids: list[int] = []

    @task(6)
    def list_orders(self) -> None:
        self.client.get("/api/orders?limit=10", name="/api/orders")

    @task(3)
    def get_order(self) -> None:
        order_id = random.choice(self.order_ids) if self.order_ids else 1
        self.client.get(f"/api/orders/{order_id}", name="/api/orders/{id}")

    @task(1)
    def create_order(self) -> None:
        body = {"customer": f"load-{random.randrange(1000)}", "amount_cents": random.randrange(100, 100_000)}
        response = self.client.post("/api/orders", json=body, name="/api/orders")
        if response.status_code == 201:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.order_ids = (self.order_ids + [int(response.json()["order"]["id"])])[-100:]
