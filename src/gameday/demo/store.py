"""Where the demo service keeps orders: Postgres when ``$DATABASE_URL`` is set, else memory.

Both stores expose the same small surface.  A release that reads a column a migration
adds (fault ``needs-column``) passes that column as ``extra``; the Postgres store then
fails the way real code fails (the database says the column does not exist), and the
memory store, whose schema is the base schema, always does.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

BASE_COLUMNS = ("id", "customer", "amount_cents", "created_at")
MEMORY_LIMIT = 100_000  # a bounded store: a long soak never grows the process without end

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount_cents integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class StoreError(Exception):
    """The store cannot answer: the API replies 500 with this message."""


class StoreUnavailable(StoreError):
    """The database cannot be reached: the API replies 503."""


class MissingColumn(StoreError):
    def __init__(self, table: str, column: str) -> None:
        super().__init__(
            f"column {table}.{column} does not exist: this version needs the migration that adds it"
        )
        self.table, self.column = table, column


class OrderStore(Protocol):
    backend: str

    def problem(self) -> str | None: ...
    def has_column(self, table: str, column: str) -> bool: ...
    def create(self, customer: str, amount_cents: int, extra: dict[str, Any]) -> dict[str, Any]: ...
    def get(self, order_id: int, extra: tuple[str, ...]) -> dict[str, Any] | None: ...
    def recent(self, limit: int, extra: tuple[str, ...]) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class MemoryStore:
    """Orders in a dict, with the base schema only."""

    backend = "memory"

    def __init__(self) -> None:
        self._orders: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._next_id = 1
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        return None

    def has_column(self, table: str, column: str) -> bool:
        return table == "orders" and column in BASE_COLUMNS

    def _require(self, extra: Any) -> None:
        for column in extra:
            if not self.has_column("orders", column):
                raise MissingColumn("orders", column)

    def create(self, customer: str, amount_cents: int, extra: dict[str, Any]) -> dict[str, Any]:
        self._require(extra)
        with self._lock:
            order = {
                "id": self._next_id,
                "customer": customer,
                "amount_cents": amount_cents,
                "created_at": datetime.now(UTC).isoformat(),
            }
            self._orders[self._next_id] = order
            self._next_id += 1
            if len(self._orders) > MEMORY_LIMIT:
                self._orders.popitem(last=False)
            return dict(order)

    def get(self, order_id: int, extra: tuple[str, ...]) -> dict[str, Any] | None:
        self._require(extra)
        with self._lock:
            order = self._orders.get(order_id)
            return dict(order) if order else None

    def recent(self, limit: int, extra: tuple[str, ...]) -> list[dict[str, Any]]:
        self._require(extra)
        with self._lock:
            return [dict(o) for o in list(reversed(self._orders.values()))[:limit]]

    def close(self) -> None:
        pass


class PostgresStore:
    """Orders in Postgres through a small connection pool (psycopg imported lazily: fast start)."""

    backend = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 8, create_schema: bool = False) -> None:
        # No connection (nor psycopg import) here: the service listens first, so /health
        # answers at once, and readiness waits for the database instead.
        self._dsn = dsn
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._pool_size = pool_size
        # Creating the table is retried on each readiness check until it works, so a
        # database that comes up after the service does not leave it unready for good.
        self._schema_pending = create_schema
        self._schema_lock = threading.Lock()

    # -- pool -------------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[tuple[Any, bool]]:
        import psycopg

        if not self._slots.acquire(timeout=5):
            raise StoreUnavailable(f"all {self._pool_size} database connections busy for 5s")
        conn, reused = None, True
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                reused = False
                try:
                    conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=3)
                except psycopg.Error as exc:
                    raise StoreUnavailable(f"database unreachable: {_first_line(exc)}") from None
            yield conn, reused
        finally:
            if conn is not None:
                if conn.closed or conn.broken:
                    conn.close()
                else:
                    self._idle.put(conn)
            self._slots.release()

    def _run(self, work: Any) -> Any:
        import psycopg
        from psycopg import errors

        # One retry when a pooled connection turns out dead (the database restarted,
        # e.g. after a snapshot restore): the second attempt opens a fresh one.
        for attempt in (1, 2):
            with self._connection() as (conn, reused):
                try:
                    with conn.cursor() as cur:
                        return work(cur)
                except errors.UndefinedColumn as exc:
                    column = (exc.diag.message_primary or "").split('"')
                    raise StoreError(_first_line(exc) if len(column) < 2 else f"column {column[1]} does not exist") from None
                except errors.UndefinedTable:
                    raise StoreError("table orders does not exist (run the migrations, or set DEMO_CREATE_SCHEMA=1)") from None
                except psycopg.OperationalError as exc:
                    conn.close()
                    if attempt == 1 and reused:
                        continue
                    raise StoreUnavailable(f"database unreachable: {_first_line(exc)}") from None
                except psycopg.Error as exc:
                    raise StoreError(_first_line(exc)) from None
        raise AssertionError("unreachable")

    # -- store ------------------------------------------------------------------------
    def problem(self) -> str | None:
        try:
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in Postgres's catalog
            # (the startup check and a first probe arrive together): one at a time.
            with self._schema_lock:
                if self._schema_pending:
                    self._run(lambda cur: cur.execute(SCHEMA_SQL))
                    self._schema_pending = False
            found = self._run(lambda cur: cur.execute("SELECT to_regclass('orders')").fetchone()[0])
        except StoreError as exc:
            return str(exc)
        if found is None:
            return "table orders does not exist (run the migrations, or set DEMO_CREATE_SCHEMA=1)"
        return None

    def has_column(self, table: str, column: str) -> bool:
        sql = (
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s"
        )
        return bool(self._run(lambda cur: cur.execute(sql, (table, column)).fetchone()))

    def _checked(self, work: Any, table: str, extra: Any) -> Any:
        try:
            return self._run(work)
        except StoreError as exc:
            for column in extra:
                if f"column {column} does not exist" in str(exc):
                    raise MissingColumn(table, column) from None
            raise

    def create(self, customer: str, amount_cents: int, extra: dict[str, Any]) -> dict[str, Any]:
        columns = ["customer", "amount_cents", *extra]
        values = [customer, amount_cents, *extra.values()]
        sql = (
            f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            f" RETURNING {_select_list(tuple(extra))}"
        )
        return self._checked(lambda cur: _row(cur, cur.execute(sql, values).fetchone()), "orders", extra)

    def get(self, order_id: int, extra: tuple[str, ...]) -> dict[str, Any] | None:
        sql = f"SELECT {_select_list(extra)} FROM orders WHERE id = %s"

        def work(cur: Any) -> dict[str, Any] | None:
            row = cur.execute(sql, (order_id,)).fetchone()
            return _row(cur, row) if row else None

        return self._checked(work, "orders", extra)

    def recent(self, limit: int, extra: tuple[str, ...]) -> list[dict[str, Any]]:
        sql = f"SELECT {_select_list(extra)} FROM orders ORDER BY id DESC LIMIT %s"
        return self._checked(lambda cur: [_row(cur, r) for r in cur.execute(sql, (limit,)).fetchall()], "orders", extra)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _select_list(extra: tuple[str, ...]) -> str:
    # Column names come from the validated fault spec (lower-case identifiers only).
    return ", ".join((*BASE_COLUMNS, *extra))


def _row(cur: Any, row: Any) -> dict[str, Any]:
    out = {}
    for desc, value in zip(cur.description, row, strict=True):
        out[desc.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _first_line(exc: BaseException) -> str:
    from gameday.journal import redact

    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def open_store(database_url: str | None, *, create_schema: bool = False) -> OrderStore:
    if database_url:
        return PostgresStore(database_url, create_schema=create_schema)
    return MemoryStore()
