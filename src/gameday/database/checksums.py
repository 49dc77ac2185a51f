"""Per-table row counts and content checksums, computed inside Postgres.

The checksum is order-independent (a sum of per-row hashes), so a restored copy whose
rows sit in a different physical order still matches, while any changed, missing or
extra row changes it.  Sessions are pinned to UTC so timestamps render identically on
source and copy.

A row's hash is taken over its text form (``t::text``), so a logical restore (new OIDs,
another server version) hashes alike.  Two algorithms, named in every state:

* ``hash64``: ``hashtextextended`` (64 bits), PostgreSQL 11 and later; the default,
  about twice as fast as md5 on the same rows (benchmarks/database.py prints both);
* ``md5-60``: the first 60 bits of md5, for older servers and for the states snapshots
  recorded before ``hash64`` (a state without a name is one of these).

A copy is always checked with the algorithm its snapshot's state names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from gameday.journal import utcnow

_USER_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2
"""

# Summed as numeric (sum of bigint), so it never overflows.  md5-60: 15 hex digits = 60 bits, a positive bigint.
_ROW_HASH = {
    "hash64": "hashtextextended(t::text, 0)",
    "md5-60": "('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint",
}
LEGACY = "md5-60"


@dataclass(frozen=True)
class TableState:
    rows: int
    checksum: str


@dataclass
class DatabaseState:
    tables: dict[str, TableState] = field(default_factory=dict)
    taken_at: str = field(default_factory=utcnow)
    algorithm: str = LEGACY

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {"taken_at": self.taken_at, "algorithm": self.algorithm,
                "tables": {k: asdict(v) for k, v in self.tables.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatabaseState:
        """A state as to_dict wrote it; ValueError/KeyError/TypeError for anything else."""
        return cls(
            tables={k: TableState(**v) for k, v in data["tables"].items()},
            taken_at=data["taken_at"],
            algorithm=known(data.get("algorithm", LEGACY)),
        )


def known(algorithm: str) -> str:
    """``algorithm``, or ValueError if it is not one of the checksum algorithms."""
    if algorithm not in _ROW_HASH:
        raise ValueError(f"unknown checksum algorithm {algorithm!r} (known: {', '.join(_ROW_HASH)})")
    return algorithm


def pin_session(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET extra_float_digits = 1")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    conn.execute("SET IntervalStyle = 'postgres'")


def user_tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [f"{schema}.{name}" for schema, name in conn.execute(_USER_TABLES).fetchall()]


def algorithm_for(conn: psycopg.Connection[Any]) -> str:
    """The default algorithm for this server: hash64 where it has hashtextextended (11 and later)."""
    return "hash64" if conn.info.server_version >= 110000 else LEGACY


def table_state(conn: psycopg.Connection[Any], table: str, algorithm: str) -> TableState:
    schema, name = table.split(".", 1)
    query = sql.SQL("SELECT count(*), coalesce(sum(" + _ROW_HASH[algorithm] + "), 0)::text FROM {} AS t").format(
        sql.Identifier(schema, name))
    rows, checksum = conn.execute(query).fetchone()  # type: ignore[misc]
    return TableState(rows=int(rows), checksum=str(checksum))


def capture(conn: psycopg.Connection[Any], tables: list[str] | None = None, *,
            algorithm: str | None = None) -> DatabaseState:
    """Counts and checksums of every user table (or ``tables``) as this transaction sees them;
    ``algorithm``: the one a state to compare with names (default: the server's best)."""
    pin_session(conn)
    state = DatabaseState(algorithm=known(algorithm) if algorithm is not None else algorithm_for(conn))
    for table in tables if tables is not None else user_tables(conn):
        state.tables[table] = table_state(conn, table, state.algorithm)
    return state


def row_counts(conn: psycopg.Connection[Any], tables: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables:
        schema, name = table.split(".", 1)
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
        counts[table] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
    return counts


def qualify(table: str) -> str:
    """``orders`` -> ``public.orders``."""
    return table if "." in table else f"public.{table}"
