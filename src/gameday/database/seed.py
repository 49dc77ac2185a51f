"""Demo data: the demo service's orders, written the way the service writes them."""

from __future__ import annotations

import psycopg

from gameday.database.dsn import Dsn

ORDERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount_cents integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


def seed_orders(dsn: Dsn | str, count: int, *, customers: int = 100) -> int:
    """Create the demo tables if absent and add ``count`` orders; returns the orders now held."""
    conninfo = dsn.conninfo() if isinstance(dsn, Dsn) else dsn
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(ORDERS_SCHEMA)
        conn.execute(
            "INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.test' "
            "FROM generate_series(1, %s) g ON CONFLICT (email) DO NOTHING",
            (customers,),
        )
        conn.execute(
            "INSERT INTO orders (customer, amount_cents) "
            "SELECT 'customer ' || (1 + g %% %s), 100 + (g * 37) %% 9900 FROM generate_series(1, %s) g",
            (customers, count),
        )
        return int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])  # type: ignore[index]
