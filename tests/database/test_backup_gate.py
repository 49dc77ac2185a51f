"""`gameday db verify-backup`, the CI gate: exit codes and what it says, against real Postgres."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gameday.database.checksums import capture
from gameday.database.local import LocalPostgres
from gameday.database.seed import seed_orders

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def source():
    with LocalPostgres("gate-source") as db:
        seed_orders(db.dsn, 10000)
        yield db


def gate(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gameday.cli", "db", "verify-backup", "--reports", str(tmp_path / "reports"), *args],
        capture_output=True, text=True, timeout=300,
    )


def source_state(db: LocalPostgres):
    with psycopg.connect(db.dsn) as conn:
        return capture(conn).tables


def test_matching_backup_exits_0_and_source_is_untouched(source, tmp_path):
    before = source_state(source)
    result = gate("--dsn", source.dsn, "--expect", "orders=10000", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "public.orders: 10000 rows, checksum equal" in result.stdout
    assert "backup verified" in result.stdout
    assert source_state(source) == before
    journals = list((tmp_path / "reports").glob("*/journal.json"))
    assert len(journals) == 1 and "restore duration (RTO)" in journals[0].read_text()


def test_expectation_not_met_exits_1_naming_table_and_shortfall(source, tmp_path):
    result = gate("--dsn", source.dsn, "--expect", "orders=10250", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "public.orders: 10000 rows restored, expected 10250 (250 missing)" in result.stdout


def test_backup_without_a_tables_rows_exits_1(source, tmp_path):
    # A backup job that skips a table's data, as a misconfigured --exclude-table-data does.
    dump = tmp_path / "broken.pgdump"
    subprocess.run([source.tool("pg_dump"), "-Fc", "--exclude-table-data=orders", "-f", str(dump), source.dsn],
                   check=True, timeout=60)
    result = gate("--dsn", source.dsn, "--backup", str(dump), tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "public.orders was restored empty; the source holds 10000 rows" in result.stdout


def test_complete_foreign_backup_exits_0(source, tmp_path):
    dump = tmp_path / "good.pgdump"
    subprocess.run([source.tool("pg_dump"), "-Fc", "-f", str(dump), source.dsn], check=True, timeout=60)
    result = gate("--dsn", source.dsn, "--backup", str(dump), "--expect", "orders=10000", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_truncated_backup_is_a_failed_verification(source, tmp_path):
    dump = tmp_path / "cut.pgdump"
    subprocess.run([source.tool("pg_dump"), "-Fc", "-f", str(dump), source.dsn], check=True, timeout=60)
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    result = gate("--dsn", source.dsn, "--backup", str(dump), tmp_path=tmp_path)
    assert result.returncode == 1
    assert "corrupt or truncated" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_role_fails_with_the_role_named_and_no_owner_fixes_it(tmp_path):
    with LocalPostgres("role-source") as db:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("CREATE ROLE app_owner")
            conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, amount int)")
            conn.execute("INSERT INTO ledger SELECT g, g FROM generate_series(1, 100) g")
            conn.execute("ALTER TABLE ledger OWNER TO app_owner")
        failed = gate("--dsn", db.dsn, tmp_path=tmp_path)
        assert failed.returncode == 1
        assert 'role "app_owner" does not exist' in failed.stdout
        assert "--no-owner" in failed.stdout
        fixed = gate("--dsn", db.dsn, "--no-owner", tmp_path=tmp_path)
        assert fixed.returncode == 0, fixed.stdout


def test_unreachable_server_is_a_failed_verification_without_secrets(tmp_path):
    result = gate("--dsn", "postgresql://app:hunter2@127.0.0.1:1/app", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "cannot connect to source database postgresql://app:***@127.0.0.1:1/app" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    for journal in (tmp_path / "reports").glob("*/*"):
        assert "hunter2" not in journal.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dsn", "postgresql://h:notaport/db"], "invalid host or port"),
        (["--dsn", "postgresql://127.0.0.1:5432/db", "--expect", "orders"], "--expect 'orders' is not TABLE=ROWS"),
        (["--dsn", "postgresql://127.0.0.1:5432/"], "no database named"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.delenv("PGDATABASE", raising=False)
    result = gate(*args, tmp_path=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_smoke_queries_run_on_the_restored_copy(source, tmp_path):
    passing = gate("--dsn", source.dsn, "--smoke", "SELECT count(*) > 0 FROM orders", tmp_path=tmp_path)
    assert passing.returncode == 0, passing.stdout
    assert "smoke query answered: SELECT count(*) > 0 FROM orders" in passing.stdout
    failing = gate("--dsn", source.dsn, "--smoke", "SELECT 1 FROM orders WHERE amount_cents < 0", tmp_path=tmp_path)
    assert failing.returncode == 1
    assert "smoke query returned nothing" in failing.stdout
