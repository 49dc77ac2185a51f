"""The demo service's own load: a team-style locustfile for its orders API.

Nothing gameday-specific is needed to run it: ``locust -f src/gameday/demo/locustfile.py
--host http://127.0.0.1:18080``.  gameday runs it unchanged as the demo project file's
``load.locustfile``, with its recorder next to it (the project file says the release is
read from ``X-Served-By-Version``).  Like any team's locustfile it may read gameday's
pacing: ``GAMEDAY_LOAD_USER_RATE`` (requests per second per user, 0 = no pause; default
10) and ``GAMEDAY_LOAD_TIMEOUT`` (seconds; default 5).
"""

from __future__ import annotations

import contextlib
import os
import random

from locust import FastHttpUser, constant, constant_throughput, task

USER_RATE = float(os.environ.get("GAMEDAY_LOAD_USER_RATE") or "10")
TIMEOUT = float(os.environ.get("GAMEDAY_LOAD_TIMEOUT") or "5")


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
        with self.client.get(f"/api/orders/{order_id}", name="/api/orders/{id}", catch_response=True) as response:
            if response.status_code == 404:
                # Each replica of the in-memory demo has its own orders: one created through
                # another replica (or before a restart) is missing here. Not the service failing.
                response.success()

    @task(1)
    def create_order(self) -> None:
        body = {"customer": f"load-{random.randrange(1000)}", "amount_cents": random.randrange(100, 100_000)}
        response = self.client.post("/api/orders", json=body, name="/api/orders")
        if response.status_code == 201:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.order_ids = (self.order_ids + [int(response.json()["order"]["id"])])[-100:]
