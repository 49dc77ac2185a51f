"""Alembic environment for the demo service's schema.

Where the database URL comes from, first match wins:
  1. a SQLAlchemy connection handed over in ``config.attributes["connection"]`` (programmatic use),
  2. ``alembic -x dsn=postgresql://...``,
  3. the ``GAMEDAY_MIGRATIONS_DSN`` environment variable,
  4. ``sqlalchemy.url`` in alembic.ini.
Plain ``postgres://`` / ``postgresql://`` URLs are given the psycopg 3 driver.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config

# Programmatic callers (gameday) keep their own logging set-up.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# No ORM models: revisions are written by hand, so autogenerate has nothing to compare.
target_metadata = None


def database_url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("dsn")
        or os.environ.get("GAMEDAY_MIGRATIONS_DSN")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit("no database URL: pass -x dsn=postgresql://... or set GAMEDAY_MIGRATIONS_DSN")
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    shared = config.attributes.get("connection")
    if shared is not None:
        run_with(shared)
        return
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
