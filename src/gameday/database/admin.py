"""Server-level housekeeping every database provider shares."""

from __future__ import annotations

import psycopg
from psycopg import sql

from gameday.database.dsn import Dsn


def recreate_database(server: Dsn, name: str) -> str:
    """Drop ``name`` if it exists and create it empty, through the server's maintenance
    database; returns the new database's DSN (the role needs CREATEDB)."""
    with psycopg.connect(server.with_database("postgres").conninfo(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return str(server.with_database(name))
