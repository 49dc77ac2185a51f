"""A corpus of alembic histories reproducing what real projects do, written on demand.

    alembic_history("name", [("message", "upgrade body", "downgrade body"), ...], env="database-url")

Each revision's body is Python inside ``upgrade()`` / ``downgrade()`` with ``op`` and ``sa``
imported.  ``env`` picks how env.py finds its URL:

* ``alembic``       config.get_main_option("sqlalchemy.url") (what alembic hands over);
* ``database-url``  os.environ["DATABASE_URL"], as many applications' settings do;
* ``app-variable``  os.environ["INVENTORY_DB_URL"], an application-specific name;
* ``hard-coded``    a URL written into env.py (``{url}`` in ``env_url``): the unsafe kind.

``history_of_kinds(n)`` (fixture ``long_history``) gives the revisions of an n-revision history mixing tables, columns,
indexes, backfills and constraints (the benchmark uses it too).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gameday.database.local import LocalPostgres

_ENV = '''
import os

from alembic import context
from sqlalchemy import create_engine, pool

URL = {source}


def run_migrations_online():
    url = URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
'''

ENV_SOURCES = {
    "alembic": 'context.config.get_main_option("sqlalchemy.url")',
    "database-url": 'os.environ["DATABASE_URL"]',
    "app-variable": 'os.environ["INVENTORY_DB_URL"]',
    "hard-coded": "{url!r}",
}

Revision = tuple[str, str, str]  # message, upgrade body, downgrade body


def write_history(root: Path, revisions: list[Revision], *, env: str = "alembic", env_url: str = "",
                  files: dict[str, str] | None = None) -> Path:
    """An alembic folder at ``root`` with revisions r001, r002, ... in a chain."""
    (root / "versions").mkdir(parents=True, exist_ok=True)
    source = ENV_SOURCES[env].format(url=env_url)
    (root / "env.py").write_text(_ENV.format(source=source))
    for index, (message, up, down) in enumerate(revisions, 1):
        parent = f"r{index - 1:03d}" if index > 1 else None
        (root / "versions" / f"r{index:03d}.py").write_text(
            f'"""{message}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f"revision = 'r{index:03d}'\ndown_revision = {parent!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{textwrap.indent(textwrap.dedent(up).strip() or 'pass', '    ')}\n\n\n"
            f"def downgrade():\n{textwrap.indent(textwrap.dedent(down).strip() or 'pass', '    ')}\n")
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def history_of_kinds(n: int) -> list[Revision]:
    """n revisions of the kinds real histories are made of, each with a correct downgrade."""
    out: list[Revision] = [(
        "create accounts",
        "op.execute('CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL UNIQUE, "
        "plan text NOT NULL DEFAULT \\'free\\' CHECK (plan IN (\\'free\\', \\'pro\\')))')",
        "op.drop_table('accounts')")]
    for i in range(2, n + 1):
        kind = (i - 1) % 5
        if kind == 0:
            out.append((f"create table t{i}",
                        f"op.execute('CREATE TABLE t{i} (account_id integer PRIMARY KEY REFERENCES accounts (id), "
                        f"score integer NOT NULL CHECK (score >= 0))')",
                        f"op.drop_table('t{i}')"))
        elif kind == 1:
            out.append((f"add column c{i}", f"op.add_column('accounts', sa.Column('c{i}', sa.Text))",
                        f"op.drop_column('accounts', 'c{i}')"))
        elif kind == 2:
            out.append((f"index c{i - 1}", f"op.create_index('ix_c{i - 1}', 'accounts', ['c{i - 1}'])",
                        f"op.drop_index('ix_c{i - 1}', 'accounts')"))
        elif kind == 3:
            out.append((f"backfill c{i - 2}", f"op.execute(\"UPDATE accounts SET c{i - 2} = 'x' WHERE c{i - 2} IS NULL\")",
                        ""))
        else:
            out.append((f"check on c{i - 3}",
                        f"op.create_check_constraint('ck_c{i - 3}', 'accounts', 'char_length(c{i - 3}) < 200')",
                        f"op.drop_constraint('ck_c{i - 3}', 'accounts', type_='check')"))
    return out


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[LocalPostgres]:
    """A local Postgres server for the test module (its name is the label)."""
    with LocalPostgres(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")) as db:
        yield db


@pytest.fixture
def alembic_history(tmp_path: Path) -> Callable[..., Path]:
    """Write a history under tmp_path: ``alembic_history(name, revisions, env=..., env_url=..., files=...)``."""

    def make(name: str, revisions: list[Revision], **kwargs: object) -> Path:
        return write_history(tmp_path / name, revisions, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def long_history() -> Callable[[int], list[Revision]]:
    return history_of_kinds
