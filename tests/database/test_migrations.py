"""The migration reversibility check, the seeder and the alembic downgrade procedure, on real Postgres."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import psycopg
import pytest

from gameday.database.migrations.catalog import data_snapshot, diff_data, schema_snapshot
from gameday.database.migrations.check import Classification, check_migrations
from gameday.database.migrations.project import (
    MigrationProject,
    ScratchDatabases,
    current_revision,
    demo_migrations,
)
from gameday.database.migrations.seed import seed_database
from gameday.errors import ConfigError, GameDayError, RehearsalFailed
from gameday.journal import Journal
from gameday.procedures.alembic_downgrade import alembic_downgrade

pytestmark = pytest.mark.postgres


@pytest.fixture
def scratch(server):
    with ScratchDatabases(server.dsn, prefix="t") as databases:
        yield databases


# -- a migration set written to fail the check in known ways ----------------------------------

_REVISIONS = {
    "a1": ("create items and tags", None, """
        op.execute("CREATE TYPE tag_kind AS ENUM ('colour', 'size', 'brand')")
        op.execute('''CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, qty integer,
                      price numeric(6, 2), active boolean, ref uuid, attrs jsonb, sku varchar(8) UNIQUE)''')
        op.execute('''CREATE TABLE tags (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                      item_id integer NOT NULL REFERENCES items (id), kind tag_kind NOT NULL, seen date)''')
    """, """
        op.execute("DROP TABLE tags"); op.execute("DROP TABLE items"); op.execute("DROP TYPE tag_kind")
    """),
    "a2": ("add extra, downgrade forgets it", "a1",
           "op.add_column('items', sa.Column('extra', sa.Text))", "pass"),
    "a3": ("add scratch column, downgrade corrupts qty", "a2",
           "op.add_column('items', sa.Column('tmp', sa.Integer))",
           "op.execute('UPDATE items SET qty = qty + 1'); op.drop_column('items', 'tmp')"),
    "a4": ("rename name to title", "a3",
           "op.alter_column('items', 'name', new_column_name='title')",
           "op.alter_column('items', 'title', new_column_name='name')"),
    "a5": ("add NOT NULL column without a backfill", "a4",
           "op.add_column('items', sa.Column('owner', sa.Text, nullable=False))",
           "op.drop_column('items', 'owner')"),
}


def write_migration_set(root: Path) -> Path:
    shutil.copy(demo_migrations() / "env.py", root / "env.py")
    shutil.copy(demo_migrations() / "script.py.mako", root / "script.py.mako")
    (root / "versions").mkdir()
    for rev, (message, down, up, back) in _REVISIONS.items():
        (root / "versions" / f"{rev}.py").write_text(
            f'"""{message}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{textwrap.indent(textwrap.dedent(up).strip(), '    ')}\n\n\n"
            f"def downgrade():\n{textwrap.indent(textwrap.dedent(back).strip(), '    ')}\n"
        )
    return root


@pytest.fixture
def broken_set(tmp_path):
    return write_migration_set(tmp_path)


# -- the demo service's revisions -------------------------------------------------------------


def test_demo_revisions_are_classified_by_round_trip(server):
    journal = Journal()
    check = check_migrations(dsn=server.dsn, revisions=["0002", "0003", "0004", "0005"], rows=200, journal=journal)
    got = {v.revision: v.classification for v in check.verdicts}
    assert got == {"0002": Classification.REVERSIBLE, "0003": Classification.LOSSY,
                   "0004": Classification.REVERSIBLE, "0005": Classification.IRREVERSIBLE}
    assert check.verdict("0003").lossy_columns == ["orders.legacy_note"]
    assert "NotImplementedError" in check.verdict("0005").error and "\n" not in check.verdict("0005").error
    # expand/contract: measured from the upgrade's schema diff and the replayed old queries
    assert not check.verdict("0002").hazards
    kinds_0004 = {(h.kind, h.subject) for h in check.verdict("0004").hazards}
    assert kinds_0004 == {("add-not-null", "orders.currency"), ("old-writer", "orders")}
    assert {h.kind for h in check.verdict("0003").hazards} == {"drop-column", "old-reader", "old-writer"}
    # integer -> bigint widens: the previous release keeps working, but the table is rewritten (measured)
    assert check.verdict("0005").hazards == []
    assert [c for c in check.verdict("0005").upgrade_changes if c.startswith("table orders rewritten")]
    assert check.source_revision is None  # the server's own database was only read, never migrated
    verdicts = [e for e in journal.loose.events if e.kind == "migration-verdict"]
    assert [e.data["classification"] for e in verdicts] == ["reversible", "lossy", "reversible", "irreversible"]
    assert any(m.name == "migration 0004 downgrade" and m.value > 0 for m in journal.loose.measurements)


def test_each_revision_gets_its_own_scratch_database_and_leaves_none_behind(server):
    check_migrations(dsn=server.dsn, revisions=["0002"], rows=10)
    with psycopg.connect(server.dsn) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert not [n for n in names if n.startswith("gameday_mig")]
    assert current_revision(server.dsn) is None


# -- the classifier can fail ------------------------------------------------------------------


def test_classifier_catches_drift_corruption_rename_and_failed_upgrade(server, broken_set):
    check = check_migrations(broken_set, dsn=server.dsn, rows=50)
    by_rev = {v.revision: v for v in check.verdicts}
    assert by_rev["a1"].classification is Classification.REVERSIBLE
    assert by_rev["a2"].classification is Classification.SCHEMA_DRIFT
    assert any("items.extra" in line for line in by_rev["a2"].schema_drift)
    assert by_rev["a3"].classification is Classification.LOSSY
    assert by_rev["a3"].lossy_columns == ["items.qty"]
    assert by_rev["a4"].classification is Classification.REVERSIBLE
    assert [(h.kind, h.subject) for h in by_rev["a4"].hazards if h.source == "schema"] == [("rename", "items.name")]
    assert by_rev["a5"].classification is Classification.UPGRADE_FAILED
    assert "owner" in by_rev["a5"].error


def test_seeder_fills_every_column_deterministically(server, broken_set, scratch):
    project = MigrationProject(broken_set)
    first, second = scratch.create("one"), scratch.create("two")
    for dsn in (first, second):
        project.upgrade(dsn, "a1")
        assert seed_database(dsn, 30).rows == {"items": 30, "tags": 30}
    schema = schema_snapshot(first)
    with psycopg.connect(first) as conn:
        for table, spec in schema.tables.items():
            for column in spec.columns:
                nulls = conn.execute(f'SELECT count(*) FROM {table} WHERE "{column}" IS NULL').fetchone()[0]
                assert nulls == 0, f"{table}.{column} left empty"
    assert data_snapshot(first) == data_snapshot(second)


def test_checksums_see_changed_and_swapped_values(server, scratch):
    dsn = scratch.create("sums")
    MigrationProject().upgrade(dsn, "0002")
    seed_database(dsn, 20)
    before = data_snapshot(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # swap two customers: counts and the multiset of values stay the same
        conn.execute("UPDATE orders SET customer = CASE id WHEN 1 THEN (SELECT customer FROM orders WHERE id = 2) "
                     "ELSE (SELECT customer FROM orders WHERE id = 1) END WHERE id IN (1, 2)")
    assert diff_data(before, data_snapshot(dsn)).columns_changed == ["orders.customer"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE reordered AS SELECT 1")  # unrelated table: not a difference in orders
        conn.execute("DELETE FROM orders WHERE id = 3")
    assert diff_data(before, data_snapshot(dsn)).rows_changed == {"orders": (20, 19)}


# -- the downgrade procedure ------------------------------------------------------------------


def test_downgrade_procedure_verifies_revision_and_schema(server, scratch):
    dsn = scratch.create("down")
    MigrationProject().upgrade(dsn, "0004")
    seed_database(dsn, 100)
    journal = Journal()
    result = alembic_downgrade(dsn, "-1", journal=journal)
    assert (result.from_revision, result.target, result.revision_after) == ("0004", "0003", "0003")
    assert result.ok and result.schema_diff == [] and result.act_s > 0
    assert current_revision(dsn) == "0003"
    assert "currency" not in schema_snapshot(dsn).tables["orders"].columns
    act = [m for m in journal.loose.measurements if m.name == "alembic downgrade act"]
    assert len(act) == 1 and act[0].value == result.act_s


def test_downgrade_procedure_fails_when_schema_does_not_match(server, broken_set, scratch):
    dsn = scratch.create("drift")
    MigrationProject(broken_set).upgrade(dsn, "a2")
    with pytest.raises(RehearsalFailed, match="schema differs from revision a1: column items.extra added"):
        alembic_downgrade(dsn, "a1", script_location=broken_set)


def test_downgrade_procedure_reports_an_irreversible_migration(server, scratch):
    dsn = scratch.create("irrev")
    MigrationProject().upgrade(dsn, "head")
    result = alembic_downgrade(dsn, "-1", check=False)
    assert not result.ok and "NotImplementedError" in result.error
    assert result.revision_after == "0005" == current_revision(dsn)
    with pytest.raises(RehearsalFailed, match="alembic_version is 0005, expected 0004"):
        result.require_ok()


# -- bad input: one line, naming the input and the fix ----------------------------------------


def _one_line(error: GameDayError) -> str:
    line = error.one_line()
    assert "\n" not in line and error.fix
    return line


def test_missing_or_empty_alembic_folder(tmp_path):
    with pytest.raises(ConfigError) as missing:
        MigrationProject(tmp_path / "nowhere")
    assert "nowhere does not exist" in _one_line(missing.value)
    with pytest.raises(ConfigError) as empty:
        check_migrations(tmp_path, dsn="postgresql://u@127.0.0.1:1/db")
    assert "has no env.py" in _one_line(empty.value)


def test_unknown_revision(server):
    with pytest.raises(ConfigError) as unknown:
        check_migrations(dsn=server.dsn, revisions=["9999"])
    assert "'9999' is not in" in _one_line(unknown.value) and "0005" in unknown.value.fix
    with pytest.raises(ConfigError, match="not below the current revision"):
        project = MigrationProject()
        dsn = server.create_database("at_0002")
        project.upgrade(dsn, "0002")
        alembic_downgrade(dsn, "0004")


def test_wrong_dsn_is_one_line_without_the_password():
    with pytest.raises(ConfigError) as wrong:
        check_migrations(dsn="postgresql://app:s3cret@127.0.0.1:1/orders", revisions=["0002"])
    line = _one_line(wrong.value)
    assert line.startswith("cannot connect to postgresql://app:***@127.0.0.1:1/orders") and "s3cret" not in line
    with pytest.raises(ConfigError, match="cannot connect"):
        alembic_downgrade("postgresql://app:s3cret@127.0.0.1:1/orders", "-1")


def test_project_found_through_an_alembic_ini(tmp_path, broken_set):
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s\n")
    assert MigrationProject(ini).path == broken_set.resolve()
    elsewhere = tmp_path / "app"
    elsewhere.mkdir()
    (elsewhere / "alembic.ini").write_text(f"[alembic]\nscript_location = {broken_set}\n")
    project = MigrationProject(elsewhere)
    assert project.path == broken_set.resolve() and [r.revision for r in project.history()] == list(_REVISIONS)
    (elsewhere / "alembic.ini").write_text("[alembic]\nscript_location = missing\n")
    with pytest.raises(ConfigError, match="missing does not exist"):
        MigrationProject(elsewhere / "alembic.ini")
