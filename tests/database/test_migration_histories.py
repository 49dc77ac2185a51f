"""The migration check on histories shaped like real projects' (the corpus in conftest.py), on real Postgres:
env.py reading the application's settings, tables the application creates, files that do not load,
revisions that cannot be checked, drift with data loss, type changes, and a 100-revision history."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from gameday.database.migrations.check import Classification, check_migrations, widens
from gameday.errors import ConfigError
from gameday.lifecycle import wait_until

pytestmark = pytest.mark.postgres

CREATE_ITEMS = ("create items", "op.execute('CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)')",
                "op.drop_table('items')")
ADD_NOTE = ("add note", "op.add_column('items', sa.Column('note', sa.Text))", "op.drop_column('items', 'note')")


@pytest.fixture
def decoy(server):
    """A database that must never be touched: what $DATABASE_URL points at in production."""
    name = f"decoy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.dsn.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def tables_in(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def check_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", "db", "migrations", "check", *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    text = result.stderr.strip() or result.stdout.strip()
    for needle in needles:
        assert needle in text, text
    return text


# -- never the wrong database ------------------------------------------------------------------


def test_env_reading_database_url_gets_the_scratch_database_and_the_decoy_is_untouched(server, decoy, alembic_history):
    project = alembic_history("app", [CREATE_ITEMS, ADD_NOTE], env="database-url")
    result = check_cli("--dsn", server.dsn, "--script-location", str(project), "--rows", "20",
                       env={"DATABASE_URL": decoy, "SQLALCHEMY_DATABASE_URI": decoy, "PGDATABASE": decoy.rsplit("/")[-1]})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[2/2] r002 reversible" in result.stdout
    assert tables_in(decoy) == []


def test_env_reading_an_application_variable_is_refused_until_named_and_the_decoy_is_untouched(server, decoy,
                                                                                             alembic_history):
    project = alembic_history("app", [CREATE_ITEMS, ADD_NOTE], env="app-variable")
    args = ("--dsn", server.dsn, "--script-location", str(project), "--rows", "20")
    refused = check_cli(*args, env={"INVENTORY_DB_URL": decoy})
    one_line_exit_2(refused, "env.py:", "$INVENTORY_DB_URL", "--url-env INVENTORY_DB_URL")
    assert tables_in(decoy) == []
    named = check_cli(*args, "--url-env", "INVENTORY_DB_URL", env={"INVENTORY_DB_URL": decoy})
    assert named.returncode == 0, named.stdout + named.stderr
    assert tables_in(decoy) == []


def test_env_with_its_own_url_stops_the_check_at_once_naming_env_py(server, decoy, alembic_history):
    project = alembic_history("app", [CREATE_ITEMS, ADD_NOTE], env="hard-coded", env_url=decoy)
    result = check_cli("--dsn", server.dsn, "--script-location", str(project), "--rows", "20")
    text = one_line_exit_2(result, "reported success, but the scratch database", "env.py")
    assert "r002" not in result.stdout  # it stopped at the first command
    assert "decoy" not in text or "***" not in text


def test_the_worker_environment_names_no_database(monkeypatch):
    from gameday.database.migrations.project import scrubbed_environment

    kept, withheld = scrubbed_environment({
        "PATH": "/usr/bin", "HOME": "/root", "DATABASE_URL": "x", "APP_DSN": "x", "PGHOST": "db", "REDIS_URL": "x",
        "MY_SETTING": "postgresql://prod-db/app", "LIBPQ": "host=prod dbname=app", "ORDERS_STORE": "x",
    }, url_env=["ORDERS_STORE"])
    assert kept == {"PATH": "/usr/bin", "HOME": "/root"}
    assert withheld == ["APP_DSN", "DATABASE_URL", "LIBPQ", "MY_SETTING", "ORDERS_STORE", "PGHOST", "REDIS_URL"]


# -- tables the application creates ------------------------------------------------------------

ALTER_USERS = [("add users.nickname", "op.add_column('users', sa.Column('nickname', sa.Text))",
                "op.drop_column('users', 'nickname')"),
               ("index users.email", "op.create_index('ix_users_email', 'users', ['email'])",
                "op.drop_index('ix_users_email', 'users')")]
BASE_SQL = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);\n"


def test_a_history_over_application_tables_needs_a_base_schema(server, alembic_history, tmp_path):
    project = alembic_history("app", ALTER_USERS)
    args = ("--dsn", server.dsn, "--script-location", str(project), "--rows", "20")
    one_line_exit_2(check_cli(*args), "r001", 'relation "users" does not exist', "--base-sql")
    base = tmp_path / "base.sql"
    base.write_text(BASE_SQL)
    with_sql = check_cli(*args, "--base-sql", str(base))
    assert with_sql.returncode == 0 and "[2/2] r002 reversible" in with_sql.stdout, with_sql.stdout + with_sql.stderr
    one_line_exit_2(check_cli(*args, "--base-sql", str(tmp_path / "missing.sql")), "missing.sql")


def test_a_base_callable_creates_the_application_tables_with_the_scratch_url(server, alembic_history):
    project = alembic_history("app", ALTER_USERS, files={"appdb.py": f'''
        import os
        import psycopg

        def create_all(url):
            assert "DATABASE_URL" in os.environ and os.environ["DATABASE_URL"] == url
            with psycopg.connect(url.replace("+psycopg", "")) as conn:
                conn.execute({BASE_SQL!r})
        '''})
    check = check_migrations(project, dsn=server.dsn, rows=20, base="appdb:create_all")
    assert [v.classification for v in check.verdicts] == [Classification.REVERSIBLE] * 2


# -- files that do not load are bad input ----------------------------------------------------------


@pytest.mark.parametrize("where, text, needles", [
    ("versions/r002.py", "def upgrade(:\n", ("r002.py:1", "SyntaxError")),
    ("versions/r002.py", "import no_such_module_here\n", ("r002.py:1", "No module named 'no_such_module_here'")),
    ("env.py", "from alembic import context\ndef broken(:\n", ("env.py:2", "SyntaxError")),
    ("env.py", "from alembic import context\nundefined_name()\n", ("env.py:2", "NameError")),
])
def test_a_file_that_does_not_load_exits_2_naming_file_and_line(server, alembic_history, where, text, needles):
    project = alembic_history("app", [CREATE_ITEMS, ADD_NOTE])
    (project / where).write_text(text)
    one_line_exit_2(check_cli("--dsn", server.dsn, "--script-location", str(project), "--rows", "5"), *needles)


# -- one revision's failure is its verdict ----------------------------------------------------------


def test_a_revision_that_cannot_be_checked_is_a_verdict_and_the_check_goes_on(server, alembic_history):
    broken = ("query a table that never existed", "op.execute('SELECT * FROM nowhere')", "")
    project = alembic_history("app", [CREATE_ITEMS, ADD_NOTE, broken, ("another", "", "")])
    result = check_cli("--dsn", server.dsn, "--script-location", str(project), "--rows", "20")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert [line.split()[1:3] for line in lines] == [["r001", "reversible"], ["r002", "reversible"],
                                                     ["r003", "not-checkable"], ["r004", "not-checkable"]]
    assert 'relation "nowhere" does not exist' in lines[2] and "even on an empty database" in lines[2]
    assert "cannot be upgraded past r002" in lines[3]
    assert "4 revisions: 2 reversible, 2 not-checkable" in " ".join(result.stdout.split())


def test_an_upgrade_that_fails_only_on_rows_is_upgrade_failed_not_unchecked(server, alembic_history):
    not_null = ("owner NOT NULL, no backfill", "op.add_column('items', sa.Column('owner', sa.Text, nullable=False))",
                "op.drop_column('items', 'owner')")
    check = check_migrations(alembic_history("app", [CREATE_ITEMS, not_null]), dsn=server.dsn, rows=10)
    assert check.verdict("r002").classification is Classification.UPGRADE_FAILED
    assert "owner" in check.verdict("r002").error


# -- honest findings ------------------------------------------------------------------------------------


def test_drift_and_data_loss_are_both_reported(server, alembic_history):
    sloppy = ("add tmp", "op.add_column('items', sa.Column('tmp', sa.Integer))\nop.create_index('ix_name', 'items', ['name'])",
              "op.execute(\"UPDATE items SET name = 'lost'\")\nop.drop_column('items', 'tmp')")
    verdict = check_migrations(alembic_history("app", [CREATE_ITEMS, sloppy]), dsn=server.dsn, rows=10).verdict("r002")
    assert verdict.classification is Classification.SCHEMA_DRIFT
    assert any("ix_name" in line for line in verdict.schema_drift)
    assert verdict.lossy_columns == ["items.name"] and "data lost in items.name" in verdict.detail()


def test_type_changes_are_judged_by_what_postgres_does(server, alembic_history):
    create = ("create", "op.execute('CREATE TABLE items (id serial PRIMARY KEY, code varchar(50), label varchar)')",
              "op.drop_table('items')")
    widen = ("widen code", "op.alter_column('items', 'code', type_=sa.String(255))",
             "op.alter_column('items', 'code', type_=sa.String(50))")
    narrow = ("limit label", "op.alter_column('items', 'label', type_=sa.String(255))",
              "op.alter_column('items', 'label', type_=sa.String())")
    check = check_migrations(alembic_history("app", [create, widen, narrow]), dsn=server.dsn, rows=10)
    widened, limited = check.verdict("r002"), check.verdict("r003")
    assert not widened.hazards  # the previous release keeps working on a wider column
    assert not [c for c in widened.upgrade_changes if "rewritten" in c]  # and PostgreSQL did not rewrite
    assert [(h.kind, h.subject) for h in limited.hazards if h.source == "schema"] == [("retype", "items.label")]
    assert [c for c in limited.upgrade_changes if c.startswith("table items rewritten by the upgrade (measured")]


def test_widening_rules():
    assert widens("character varying(50)", "character varying(255)") and widens("character varying(50)", "text")
    assert widens("numeric(6,2)", "numeric(8,2)") and widens("integer", "bigint")
    assert not widens("character varying", "character varying(255)") and not widens("bigint", "integer")
    assert not widens("numeric(6,2)", "numeric(8,3)") and not widens("text", "integer")


# -- a long history -------------------------------------------------------------------------------------


def test_a_100_revision_history_gives_a_verdict_per_revision_and_reports_progress(server, alembic_history,
                                                                                  long_history):
    project = alembic_history("long", long_history(100))
    result = check_cli("--dsn", server.dsn, "--script-location", str(project), "--rows", "50", timeout=900)
    verdicts = [re.match(r"\[ *(\d+)/100\] (\S+) (\S+)", line) for line in result.stdout.splitlines()]
    found = [m.groups() for m in verdicts if m]
    assert [int(i) for i, _, _ in found] == list(range(1, 101)), result.stdout + result.stderr
    assert [rev for _, rev, _ in found] == [f"r{i:03d}" for i in range(1, 101)]
    assert result.returncode == 0, "\n".join(line for line in result.stdout.splitlines() if "reversible" not in line)
    assert "100 revisions: 100 reversible" in " ".join(result.stdout.split())


def test_unknown_base_callable_and_bad_spec_are_bad_input(server, alembic_history):
    project = alembic_history("app", ALTER_USERS)
    with pytest.raises(ConfigError, match="not module:function"):
        check_migrations(project, dsn=server.dsn, base="no-colon")
    with pytest.raises(ConfigError, match="No module named"):
        check_migrations(project, dsn=server.dsn, base="nowhere_module:create_all")


def _my_workers() -> set[str]:
    found = subprocess.run(["pgrep", "-f", "gameday.database.migrations.worker"], capture_output=True, text=True)
    return {pid for pid in found.stdout.split() if Path(f"/proc/{pid}/status").exists()
            and f"PPid:\t{os.getpid()}" in Path(f"/proc/{pid}/status").read_text()}


def test_nothing_is_left_behind(server, alembic_history):
    before = _my_workers()
    check_migrations(alembic_history("app", [CREATE_ITEMS, ADD_NOTE]), dsn=server.dsn, rows=5)
    with psycopg.connect(server.dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'gameday_mig%'")]
    assert names == []
    assert _my_workers() <= before  # the check's worker is gone


def test_a_project_dropped_unclosed_stops_its_worker(server, alembic_history):
    from gameday.database.migrations import MigrationProject

    before = _my_workers()
    project = MigrationProject(alembic_history("app", [CREATE_ITEMS]))
    project.history()
    assert _my_workers() - before  # the worker runs
    del project
    assert wait_until(lambda: not _my_workers() - before, timeout=10, what="the worker to stop")



# -- a seeder for real schemas -------------------------------------------------------------------------

REAL_SCHEMA = """
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE TYPE tier AS ENUM ('bronze', 'silver', 'gold');
CREATE TABLE accounts (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE CHECK (email LIKE '%@%'),
    plan text NOT NULL CHECK (plan IN ('free', 'pro')),
    seats positive_int NOT NULL,
    tier tier NOT NULL,
    discount numeric(4,2) NOT NULL CHECK (discount BETWEEN 0 AND 50),
    code varchar(8) NOT NULL CHECK (char_length(code) <= 8),
    region text NOT NULL,
    shard smallint NOT NULL CHECK (shard >= 1 AND shard <= 4),
    label text GENERATED ALWAYS AS (plan || ':' || region) STORED,
    UNIQUE (region, shard)
);
CREATE TABLE profiles (account_id integer PRIMARY KEY REFERENCES accounts (id), bio text);
CREATE TABLE bookings (
    id bigserial PRIMARY KEY,
    region text NOT NULL, shard smallint NOT NULL,
    starts_at timestamptz NOT NULL, ends_at timestamptz NOT NULL,
    FOREIGN KEY (region, shard) REFERENCES accounts (region, shard),
    CHECK (ends_at > starts_at)
);
CREATE TABLE categories (id serial PRIMARY KEY, parent_id integer REFERENCES categories (id), name text NOT NULL);
"""


@pytest.fixture
def real_schema(server):
    name = f"seed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(REAL_SCHEMA)
    yield url
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_seeder_satisfies_checks_domains_composite_keys_pk_fk_tables_and_self_references(real_schema):
    from gameday.database.migrations.catalog import data_snapshot
    from gameday.database.migrations.seed import seed_database

    seeded = seed_database(real_schema, 40)
    assert seeded.unseeded == {}
    assert seeded.rows == {"accounts": 40, "profiles": 40, "bookings": 40, "categories": 40}
    with psycopg.connect(real_schema) as conn:
        # every account has its own profile (a primary key that is a foreign key: distinct parents)
        assert conn.execute("SELECT count(DISTINCT account_id) FROM profiles").fetchone()[0] == 40
        assert conn.execute("SELECT count(*) FROM categories WHERE parent_id IS NOT NULL").fetchone()[0] == 39
        assert conn.execute("SELECT count(DISTINCT plan) FROM accounts").fetchone()[0] == 2
    first = data_snapshot(real_schema)
    with psycopg.connect(real_schema, autocommit=True) as conn:
        conn.execute("TRUNCATE accounts, profiles, bookings, categories RESTART IDENTITY")
    seed_database(real_schema, 40)
    assert data_snapshot(real_schema) == first  # the same schema and N give the same rows


def test_a_table_no_value_satisfies_is_named_with_its_constraint(real_schema):
    from gameday.database.migrations.seed import seed_database

    with psycopg.connect(real_schema, autocommit=True) as conn:
        conn.execute("CREATE TABLE impossible (id serial PRIMARY KEY, v integer NOT NULL, "
                     "CONSTRAINT never CHECK (v <> v))")
    seeded = seed_database(real_schema, 10)
    assert list(seeded.unseeded) == ["impossible"] and "never" in seeded.unseeded["impossible"]
    assert seeded.rows["accounts"] == 10  # the others are seeded all the same


PK_FK = ("profiles: primary key is the account's",
         "op.execute('CREATE TABLE profiles (account_id integer PRIMARY KEY REFERENCES accounts (id), bio text)')",
         "op.drop_table('profiles')")
ACCOUNTS = ("accounts with checks",
            "op.execute(\"CREATE TABLE accounts (id serial PRIMARY KEY, plan text NOT NULL "
            "CHECK (plan IN ('free', 'pro')), seats integer NOT NULL CHECK (seats BETWEEN 1 AND 5))\")",
            "op.drop_table('accounts')")


def test_pk_fk_tables_and_checks_give_no_false_alarms_and_real_breaks_are_still_found(server, alembic_history):
    nullable = ("profiles.avatar", "op.add_column('profiles', sa.Column('avatar', sa.Text))",
                "op.drop_column('profiles', 'avatar')")
    required = ("profiles.locale NOT NULL with a default the old release does not send",
                "op.add_column('profiles', sa.Column('locale', sa.Text, nullable=False, server_default='en'))\n"
                "op.alter_column('profiles', 'locale', server_default=None)",
                "op.drop_column('profiles', 'locale')")
    check = check_migrations(alembic_history("app", [ACCOUNTS, PK_FK, nullable, required]), dsn=server.dsn, rows=30)
    assert [v.classification for v in check.verdicts] == [Classification.REVERSIBLE] * 4
    assert all(not v.unseeded for v in check.verdicts), [v.unseeded for v in check.verdicts]
    assert check.verdict("r002").rows_seeded == {"accounts": 30}
    assert check.verdict("r003").hazards == [] and check.verdict("r003").probe_notes == []
    old_writer = [h for h in check.verdict("r004").hazards if h.kind == "old-writer"]
    assert [h.subject for h in old_writer] == ["profiles"] and "locale" in old_writer[0].detail


def test_a_composite_foreign_key_seeds_its_parent_first_whatever_the_names(real_schema):
    from gameday.database.migrations.seed import seed_database

    with psycopg.connect(real_schema, autocommit=True) as conn:
        conn.execute("CREATE TABLE z_regions (region text, shard int, PRIMARY KEY (region, shard));"
                     "CREATE TABLE a_shipments (id serial PRIMARY KEY, region text NOT NULL, shard int NOT NULL, "
                     "FOREIGN KEY (region, shard) REFERENCES z_regions (region, shard))")
    seeded = seed_database(real_schema, 12)
    assert "a_shipments" not in seeded.unseeded and seeded.rows["a_shipments"] == 12
    with psycopg.connect(real_schema) as conn:
        assert conn.execute("SELECT count(DISTINCT (region, shard)) FROM a_shipments").fetchone()[0] == 12
