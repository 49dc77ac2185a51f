"""`gameday db verify-backup`, the CI gate: exit codes and what it says, against real Postgres."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gameday.database.checksums import capture
from gameday.database.dsn import Dsn
from gameday.database.local import LocalPostgres, pg_bindir
from gameday.database.rehearsal import BackupRehearsal
from gameday.database.seed import seed_orders
from gameday.database.snapshot import roles_in_script, sql_statements, take_snapshot
from gameday.errors import RehearsalFailed
from gameday.journal import Journal

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


# -- roles: a backup restores the way a real restore would, owners and grants included --------------------------


def as_user(db: LocalPostgres, user: str) -> str:
    return str(Dsn.build(host="127.0.0.1", port=db.port, user=user, dbname=db.database))


@pytest.fixture(scope="module")
def postgres_owned():
    """The commonest install: every table belongs to `postgres` (the scratch server's superuser is `gameday`)."""
    with LocalPostgres("postgres-owned") as db:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("CREATE ROLE postgres SUPERUSER LOGIN PASSWORD 'pg-hunter2'")
        dsn = as_user(db, "postgres")
        seed_orders(dsn, 1000)
        yield dsn


@pytest.fixture(scope="module")
def app_owned():
    """Tables owned by an application role that grants reading to a reporting role; the gate connects as the app."""
    with LocalPostgres("app-owned") as db:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("CREATE ROLE orders_app LOGIN PASSWORD 'app-hunter2'")
            conn.execute("CREATE ROLE reporting NOLOGIN")
            conn.execute("GRANT reporting TO orders_app")
            conn.execute("GRANT CREATE ON SCHEMA public TO orders_app")
        dsn = as_user(db, "orders_app")
        seed_orders(dsn, 1000)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("GRANT SELECT ON orders, customers TO reporting")
        yield dsn


def pg_tool(name: str) -> str:
    return str(pg_bindir() / name)


def external_dump(dsn: str, path: Path) -> Path:
    """A backup gameday did not take: a plain pg_dump archive, no roles beside it."""
    subprocess.run([pg_tool("pg_dump"), "-Fc", "-f", str(path), dsn], check=True, timeout=60)
    return path


def roles_file(dsn: str, path: Path) -> Path:
    """What a team keeps beside its dumps: pg_dumpall --roles-only, without passwords."""
    out = subprocess.run([pg_tool("pg_dumpall"), "--roles-only", "--no-role-passwords", "-d", dsn],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    path.write_text(out)
    return path


@pytest.mark.parametrize("owned", ["postgres_owned", "app_owned"])
def test_snapshot_of_a_source_owned_by_another_role_verifies(owned, request, tmp_path):
    dsn = request.getfixturevalue(owned)
    result = gate("--dsn", dsn, "--expect", "orders=1000", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "public.orders: 1000 rows, checksum equal" in result.stdout
    journal = next((tmp_path / "reports").glob("*/journal.json")).read_text()
    assert '"kind": "roles"' in journal
    assert "hunter2" not in journal + result.stdout + result.stderr


def test_restored_copy_keeps_the_app_roles_owner_and_grants(app_owned, tmp_path):
    journal = Journal()
    with BackupRehearsal(Dsn.parse(app_owned, use_env=False), journal=journal, snapshot_dir=tmp_path) as rehearsal:
        rehearsal.snapshot("1.0")
        rehearsal.restore(expect={"orders": 1000})
        rehearsal.require_restored()
        assert rehearsal.verification.ok, rehearsal.verification.failures
        with psycopg.connect(rehearsal.scratch_dsn) as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'").fetchone()[0]
            reads = conn.execute("SELECT has_table_privilege('reporting', 'public.orders', 'SELECT')").fetchone()[0]
            member = conn.execute("SELECT pg_has_role('orders_app', 'reporting', 'MEMBER')").fetchone()[0]
            bootstrap = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    assert (owner, reads, member, bootstrap) == ("orders_app", True, True, True)
    roles = [e for e in journal.loose.events if e.kind == "roles"]
    assert any("orders_app" in e.data.get("roles", []) and "reporting" in e.data.get("roles", []) for e in roles)


def test_snapshot_keeps_the_roles_without_passwords(app_owned, tmp_path):
    taken = take_snapshot(Dsn.parse(app_owned, use_env=False), tmp_path, release="1.0")
    manifest = json.loads(taken.manifest_path.read_text())
    assert manifest["globals"] == "roles.sql"
    roles = (taken.path.parent / "roles.sql").read_text()
    assert "CREATE ROLE orders_app;" in roles and "CREATE ROLE reporting;" in roles
    assert "PASSWORD" not in roles.upper() and "hunter2" not in roles


@pytest.mark.parametrize(("owned", "roles"), [("postgres_owned", "postgres"), ("app_owned", "orders_app, reporting")])
def test_external_backup_without_roles_exits_2_naming_them(owned, roles, request, tmp_path):
    dsn = request.getfixturevalue(owned)
    dump = external_dump(dsn, tmp_path / "nightly.pgdump")
    result = gate("--dsn", dsn, "--backup", str(dump), tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"needs roles the scratch server lacks: {roles}" in result.stderr
    assert "--globals FILE" in result.stderr and "--no-owner" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("owned", ["postgres_owned", "app_owned"])
def test_external_backup_with_globals_verifies(owned, request, tmp_path):
    dsn = request.getfixturevalue(owned)
    dump = external_dump(dsn, tmp_path / "nightly.pgdump")
    globals_file = roles_file(dsn, tmp_path / "roles.sql")
    result = gate("--dsn", dsn, "--backup", str(dump), "--globals", str(globals_file), "--expect", "orders=1000",
                  tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backup verified" in result.stdout


def test_globals_that_lack_a_role_exit_2_naming_it(app_owned, tmp_path):
    dump = external_dump(app_owned, tmp_path / "nightly.pgdump")
    partial = tmp_path / "roles.sql"
    partial.write_text("CREATE ROLE orders_app;\nALTER ROLE orders_app WITH LOGIN;\n")
    result = gate("--dsn", app_owned, "--backup", str(dump), "--globals", str(partial), tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs roles the scratch server lacks: reporting" in result.stderr
    assert str(partial) in result.stderr


def test_no_owner_still_restores_an_external_backup_without_roles(app_owned, tmp_path):
    dump = external_dump(app_owned, tmp_path / "nightly.pgdump")
    result = gate("--dsn", app_owned, "--backup", str(dump), "--no-owner", "--expect", "orders=1000", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_source_that_refuses_to_list_roles_still_snapshots_and_names_the_roles(tmp_path):
    with LocalPostgres("hardened") as db:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("CREATE ROLE ledger_app LOGIN")
            conn.execute("GRANT CREATE ON SCHEMA public TO ledger_app")
            conn.execute("REVOKE SELECT ON pg_catalog.pg_auth_members FROM PUBLIC")  # pg_dumpall is refused
        dsn = as_user(db, "ledger_app")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE ledger AS SELECT g AS id FROM generate_series(1, 100) g")
        taken = take_snapshot(Dsn.parse(dsn, use_env=False), tmp_path / "snapshots", release="1.0")
        manifest = json.loads(taken.manifest_path.read_text())
        assert manifest["globals"] is None
        assert manifest["roles_needed"] == ["ledger_app"]
        assert "pg_auth_members" in manifest["roles_not_captured"]
        refused = gate("--dsn", dsn, tmp_path=tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "needs roles the scratch server lacks: ledger_app" in refused.stderr
        fixed = gate("--dsn", dsn, "--no-owner", tmp_path=tmp_path)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_roles_are_read_from_restore_scripts_and_globals_files():
    script = "\n".join([
        "\\restrict abc",
        "-- Name: t; Type: TABLE; Schema: public; Owner: ignored_comment",
        "ALTER TABLE public.t OWNER TO orders_app;",
        'ALTER TABLE public."x y" OWNER TO "Billing ""Team""";',
        "GRANT SELECT ON TABLE public.t TO reporting;",
        "GRANT ALL ON SCHEMA public TO PUBLIC;",
        "REVOKE ALL ON TABLE public.t FROM auditor;",
        "ALTER DEFAULT PRIVILEGES FOR ROLE deployer IN SCHEMA public GRANT SELECT ON TABLES TO readers;",
        "CREATE POLICY p ON public.t FOR SELECT TO analyst, support USING ((id > 0));",
    ])
    assert roles_in_script(script) == {"orders_app", 'Billing "Team"', "reporting", "auditor", "deployer",
                                       "readers", "analyst", "support"}
    globals_text = ("\\restrict X\nSET client_encoding = 'UTF8';\n-- a comment; with a semicolon\n"
                    "CREATE ROLE \"a;b\";\nCOMMENT ON ROLE \"a;b\" IS 'two\nlines; one comment';\n\\unrestrict X\n")
    assert sql_statements(globals_text) == ["SET client_encoding = 'UTF8'", 'CREATE ROLE "a;b"',
                                            "COMMENT ON ROLE \"a;b\" IS 'two\nlines; one comment'"]


def test_a_physical_backup_restores_by_starting_a_copy_and_is_verified_the_same_way(source, tmp_path):
    before = source_state(source)
    result = gate("--dsn", source.dsn, "--method", "physical", "--expect", "orders=10000", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "public.orders: 10000 rows, checksum equal" in result.stdout and "backup verified" in result.stdout
    assert source_state(source) == before
    [journal] = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("*/journal.json")]
    measured = {m["name"]: m for m in journal["run"]["measurements"]}
    assert "pg_basebackup" in measured["snapshot duration"]["detail"]
    assert "copy of the base backup" in measured["restore duration (RTO)"]["detail"]
    [snapshot] = [e for e in journal["run"]["events"] if e["kind"] == "snapshot"]
    assert snapshot["data"]["method"] == "physical" and snapshot["data"]["written_during_backup"] is False


def test_a_physical_backup_that_differs_from_the_source_is_caught(source, tmp_path):
    journal = Journal()
    with BackupRehearsal(Dsn.parse(source.dsn, use_env=False), journal=journal, snapshot_dir=tmp_path) as rehearsal:
        rehearsal.snapshot("1.4.0", method="physical")
        # storage rot in the copy: a row of the backup's table file can no longer be trusted
        with psycopg.connect(source.dsn, autocommit=True) as conn:
            relation = conn.execute("SELECT pg_relation_filepath('orders')").fetchone()[0]
        table = rehearsal.taken.path / relation
        data = bytearray(table.read_bytes())
        data[-200:-100] = b"\0" * 100  # tuples live at the end of a page: zero part of the last one
        table.write_bytes(bytes(data))
        rehearsal.restore(expect={"orders": 10000})
        problems = [c.detail for c in rehearsal.verification.checks if not c.ok]
        error = rehearsal.restore_error.one_line() if rehearsal.restore_error else ""
    # either the copy cannot be read (said in one line) or what it holds differs from the source: never passed
    assert problems or "started but cannot be read" in error, "a backup whose table file was damaged passed"
    assert "Traceback" not in error


def test_checksum_algorithms_see_a_changed_value_and_differ_from_each_other(tmp_path):
    with LocalPostgres("sums") as db:
        seed_orders(db.dsn, 500)
        with psycopg.connect(db.dsn) as conn:
            fast, legacy = capture(conn), capture(conn, algorithm="md5-60")
        assert (fast.algorithm, legacy.algorithm) == ("hash64", "md5-60")
        assert fast.tables["public.orders"].rows == legacy.tables["public.orders"].rows == 500
        assert fast.tables["public.orders"].checksum != legacy.tables["public.orders"].checksum
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = (SELECT min(id) FROM orders)")
            after = {name: capture(conn, algorithm=name).tables["public.orders"] for name in ("hash64", "md5-60")}
        assert after["hash64"].rows == 500 and after["hash64"].checksum != fast.tables["public.orders"].checksum
        assert after["md5-60"].checksum != legacy.tables["public.orders"].checksum


def test_a_snapshot_names_its_checksum_algorithm_and_one_from_before_it_still_verifies(source, tmp_path):
    snapshot = take_snapshot(Dsn.parse(source.dsn, use_env=False), tmp_path, release="1.0.0")
    manifest = json.loads(snapshot.manifest_path.read_text())
    assert manifest["state"]["algorithm"] == "hash64"
    # A manifest written before the algorithm was named: md5-60 checksums, no name.
    with psycopg.connect(source.dsn) as conn:
        legacy = capture(conn, algorithm="md5-60").to_dict()
    del legacy["algorithm"]
    snapshot.manifest_path.write_text(json.dumps({**manifest, "state": legacy}))
    with BackupRehearsal(Dsn.parse(source.dsn, use_env=False), snapshot_dir=tmp_path) as rehearsal:
        rehearsal.use_backup(snapshot.path.parent)
        rehearsal.restore()
        rehearsal.require_matches_snapshot()
        assert rehearsal.verification.restored.algorithm == "md5-60"
    # The name is what the copy is checked with: hash64 sums read as md5-60 no longer match.
    snapshot.manifest_path.write_text(json.dumps({**manifest, "state": {**manifest["state"], "algorithm": "md5-60"}}))
    with BackupRehearsal(Dsn.parse(source.dsn, use_env=False), snapshot_dir=tmp_path) as rehearsal:
        rehearsal.use_backup(snapshot.path.parent)
        rehearsal.restore()
        with pytest.raises(RehearsalFailed, match="checksum differs"):
            rehearsal.require_matches_snapshot()
