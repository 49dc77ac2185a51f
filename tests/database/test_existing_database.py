"""The `dsn` database provider: an existing database, used only when marked for rehearsal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gameday.errors import ConfigError
from gameday.providers import choose, provider

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[2]


def test_unmarked_database_is_refused_with_the_fix(server, monkeypatch):
    monkeypatch.setenv("GAMEDAY_DSN", server.dsn)
    monkeypatch.delenv("GAMEDAY_ALLOW_NON_REHEARSAL", raising=False)
    with pytest.raises(ConfigError, match="not marked as a rehearsal target") as caught:
        provider("database", "dsn").start()
    assert "COMMENT ON DATABASE gameday IS 'gameday:rehearsal=true'" in caught.value.one_line()


def test_marked_database_is_used_and_libpq_variables_fill_the_gaps(server, monkeypatch):
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("COMMENT ON DATABASE gameday IS 'gameday:rehearsal=true'")
    monkeypatch.setenv("GAMEDAY_DATABASE", "dsn")
    monkeypatch.setenv("GAMEDAY_DSN", "dbname=gameday")
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(server.port))
    monkeypatch.setenv("PGUSER", "gameday")
    assert choose("database").name == "dsn"
    with provider("database", label="source") as db:
        with psycopg.connect(db.dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "gameday"
        scratch = db.create_database("gameday_scratch")
        with psycopg.connect(scratch) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "gameday_scratch"


def test_unreachable_database_is_one_line_without_the_password(monkeypatch):
    monkeypatch.setenv("GAMEDAY_DSN", "postgresql://app:hunter2@127.0.0.1:1/app")
    with pytest.raises(Exception) as caught:
        provider("database", "dsn").start()
    line = caught.value.one_line()
    assert "cannot connect to database gameday postgresql://app:***@127.0.0.1:1/app" in line
    assert "hunter2" not in line


def test_the_backup_feature_runs_on_an_existing_database(server, tmp_path):
    dsn = server.create_database("team_rehearsal")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("COMMENT ON DATABASE team_rehearsal IS 'gameday:rehearsal=true'")
    env = dict(os.environ, GAMEDAY_DATABASE="dsn", GAMEDAY_DSN=dsn)
    result = subprocess.run([sys.executable, "-m", "gameday.cli", "run", str(REPO / "features" / "backup_restore.feature"),
                             "-k", "completely", "--reports", str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = next(tmp_path.glob("*/journal.json")).read_text()
    assert "existing database postgresql://gameday@127.0.0.1" in journal
    with psycopg.connect(dsn) as conn:  # the scenario's orders landed in the existing database
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 10000
