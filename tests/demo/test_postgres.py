"""The demo service on a real Postgres: the orders API and the needs-column fault."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gameday.demo.process import DemoProcess
from gameday.lifecycle import wait_until

try:
    from gameday.database.local import LocalPostgres
except ModuleNotFoundError:  # the provider is written in parallel; skip only while it is absent
    LocalPostgres = None  # type: ignore[assignment,misc]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(LocalPostgres is None, reason="gameday.database.local (LocalPostgres) not available yet"),
]

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with LocalPostgres("demo-tests") as db:
        yield db.dsn


def test_orders_persist_in_postgres_across_versions(dsn: str) -> None:
    with DemoProcess(version="1.0.0", database_url=dsn, env={"DEMO_CREATE_SCHEMA": "1"}) as old:
        assert old.request("GET", "/ready").status == 200
        assert old.request("GET", "/version").json()["backend"] == "postgres"
        order = old.request("POST", "/api/orders", {"customer": "grace", "amount_cents": 990}).json()["order"]
    with DemoProcess(version="1.1.0", database_url=dsn) as new:
        fetched = new.request("GET", f"/api/orders/{order['id']}")
    assert fetched.status == 200
    assert fetched.json()["order"]["customer"] == "grace"
    assert fetched.headers["x-served-by-version"] == "1.1.0"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT amount_cents FROM orders WHERE id = %s", (order["id"],)).fetchone() == (990,)


def test_missing_table_is_unready_without_create_schema() -> None:
    with LocalPostgres("demo-empty") as db, DemoProcess(version="1.0.0", database_url=db.dsn) as demo:
        ready = demo.request("GET", "/ready")
        listed = demo.request("GET", "/api/orders")
    assert ready.status == 503 and "table orders does not exist" in ready.json()["reason"]
    assert listed.status == 500


def start_up_checked(demo: DemoProcess) -> bool:
    """The demo has said, once at start, whether it is ready (its check runs beside the server)."""
    return any(line.startswith("WARNING not ready") or line.endswith(" ready") for line in demo.logs().splitlines())


def test_needs_column_follows_the_migration_both_ways(dsn: str) -> None:
    fault = "needs-column=orders.discount_cents"
    with DemoProcess(version="1.0.0", database_url=dsn, env={"DEMO_CREATE_SCHEMA": "1"}):
        pass  # the base schema, as the first migration leaves it
    with DemoProcess(version="2.0.0-needs-column", fault=fault, database_url=dsn) as demo:
        # its start-up check runs beside the server: let it see the schema before the migration
        wait_until(lambda: start_up_checked(demo), timeout=30, what="the demo's start-up check")
        before_ready = demo.request("GET", "/ready")
        before_post = demo.request("POST", "/api/orders", {"customer": "a", "amount_cents": 1, "discount_cents": 5})
        with psycopg.connect(dsn, autocommit=True) as conn:  # the migration the release needs
            conn.execute("ALTER TABLE orders ADD COLUMN discount_cents integer NOT NULL DEFAULT 0")
        after_ready = demo.request("GET", "/ready")
        after_post = demo.request("POST", "/api/orders", {"customer": "a", "amount_cents": 1, "discount_cents": 5})
        with psycopg.connect(dsn, autocommit=True) as conn:  # alembic downgrade while it still runs
            conn.execute("ALTER TABLE orders DROP COLUMN discount_cents")
        downgraded = demo.request("GET", f"/api/orders/{after_post.json()['order']['id']}")
    assert before_ready.status == 503 and "orders.discount_cents" in before_ready.json()["reason"]
    assert before_post.status == 500 and "orders.discount_cents" in before_post.json()["error"]
    assert after_ready.status == 200
    assert after_post.status == 201 and after_post.json()["order"]["discount_cents"] == 5
    assert downgraded.status == 500 and downgraded.json()["missing_column"] == "orders.discount_cents"
    assert "WARNING not ready: column orders.discount_cents" in demo.logs()
