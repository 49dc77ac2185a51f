"""inventory-api's load profile: what the shop's storefront and back office do to it.

Mostly catalogue reads from the storefront, a steady share of item lookups, and the odd
stock intake from the back office (a POST).  Runs with plain locust, no host baked in:

    locust -f load/locustfile.py --headless -u 4 -r 4 --run-time 1m --host http://127.0.0.1:8080

Item lookups only ask for the seed catalogue (ids 1-6), which every replica serves from
start; items created by POST live on the replica that took them, so looking them up through
the Service would be a coin toss, not a signal.

Pacing may be tuned from outside (gameday sets these from the project file):
``GAMEDAY_LOAD_USER_RATE`` requests per second per user (0 = no pause; default 10) and
``GAMEDAY_LOAD_TIMEOUT`` seconds per request (default 5).
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant, constant_throughput, task

USER_RATE = float(os.environ.get("GAMEDAY_LOAD_USER_RATE") or "10")
TIMEOUT = float(os.environ.get("GAMEDAY_LOAD_TIMEOUT") or "5")

SEED_ITEM_IDS = (1, 2, 3, 4, 5, 6)
PRODUCTS = ("Socks, striped", "Tote bag", "Water bottle", "Beanie, red", "Notebook A5", "Enamel pin")


class StorefrontUser(FastHttpUser):
    """60 % catalogue pages, 30 % item lookups, 10 % stock intake."""

    wait_time = constant_throughput(USER_RATE) if USER_RATE > 0 else constant(0)
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT

    @task(6)
    def list_items(self) -> None:
        self.client.get(f"/api/items?limit={random.choice((10, 20, 50))}", name="/api/items")

    @task(3)
    def get_item(self) -> None:
        self.client.get(f"/api/items/{random.choice(SEED_ITEM_IDS)}", name="/api/items/{id}")

    @task(1)
    def receive_stock(self) -> None:
        body = {
            "name": random.choice(PRODUCTS),
            "quantity": random.randint(1, 250),
            "sku": f"INTAKE-{random.randrange(100_000):05d}",
        }
        with self.client.post("/api/items", json=body, name="/api/items", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"expected 201 Created, got {response.status_code}")
