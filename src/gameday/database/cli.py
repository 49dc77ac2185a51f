"""`gameday db ...`: database rehearsals from the command line (the CI gate lives here)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gameday import settings
from gameday.console import console
from gameday.errors import ConfigError
from gameday.journal import Journal, Status


def _parse_expectations(values: tuple[str, ...]) -> dict[str, int]:
    expect: dict[str, int] = {}
    for item in values:
        table, sep, rows = item.partition("=")
        if not sep or not table or not rows.strip().isdigit():
            raise ConfigError(f"--expect {item!r} is not TABLE=ROWS", fix="e.g. --expect orders=10000")
        expect[table.strip()] = int(rows)
    return expect


def _parse_time_columns(values: tuple[str, ...]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for item in values:
        table, sep, column = item.partition(".")
        if not sep or not table or not column:
            raise ConfigError(f"--time-column {item!r} is not TABLE.COLUMN", fix="e.g. --time-column orders.created_at")
        columns[table] = column
    return columns


@click.group()
def db() -> None:
    """Database rehearsals: backups that provably restore, migrations that provably roll back."""


@db.command("verify-backup")
@click.option("--dsn", default=None, help="database to back up and compare against "
              "(URL or key=value; libpq PG* variables fill the gaps)")
@click.option("--backup", type=click.Path(path_type=Path), default=None,
              help="verify this existing backup (pg_dump archive or gameday snapshot) instead of taking one")
@click.option("--expect", multiple=True, metavar="TABLE=ROWS", help="rows a table must have after restore")
@click.option("--smoke", multiple=True, metavar="SQL", help="query that must return a truthy first column")
@click.option("--time-column", multiple=True, metavar="TABLE.COLUMN",
              help="write-time column used to measure the RPO window exactly")
@click.option("--release", default="adhoc", help="release version the snapshot is tagged with")
@click.option("--no-owner", is_flag=True, help="restore without owners and grants (when roles are not backed up)")
@click.option("--reports", type=click.Path(path_type=Path), default=None, help="report folder root")
def verify_backup(dsn: str | None, backup: Path | None, expect: tuple[str, ...], smoke: tuple[str, ...],
                  time_column: tuple[str, ...], release: str, no_owner: bool, reports: Path | None) -> None:
    """Prove a backup restores: exit 0 restored and verified, 1 verification failed, 2 bad input."""
    from gameday.database.backup import rehearse_backup
    from gameday.database.dsn import Dsn
    from gameday.report import write_reports

    source = Dsn.parse(dsn)
    if not source.dbname:
        raise ConfigError("no database named in --dsn or PGDATABASE", fix="e.g. --dsn postgresql://user@host:5432/app")
    expectations = _parse_expectations(expect)
    journal = Journal(environment={"command": "db verify-backup", "source": source.redacted()})
    outcome = rehearse_backup(source, release=release, backup=backup, expect=expectations, smoke=list(smoke),
                              time_columns=_parse_time_columns(time_column), journal=journal, no_owner=no_owner)
    journal.loose.finish(Status.PASSED if outcome.ok else Status.FAILED, None if outcome.ok else "; ".join(outcome.problems()))
    journal.finish()
    out = write_reports(journal, (reports or Path(settings.get("reports"))) / journal.run_id)
    for check in outcome.verification.checks:
        mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
        console.print(f"{mark} {check.detail}", highlight=False)
    if outcome.restore is not None:
        console.print(f"restore (RTO): {outcome.restore.duration_s:.2f} s", highlight=False)
    if outcome.loss is not None:
        console.print(f"data lost since snapshot (RPO): {outcome.loss.rows} rows, {outcome.loss.seconds:.1f} s",
                      highlight=False)
    if outcome.ok:
        console.print(f"[green]backup verified[/green] · journal {out / 'journal.json'}", highlight=False)
        sys.exit(0)
    for problem in outcome.problems():
        console.print(f"[red]verification failed:[/red] {problem}", highlight=False)
    sys.exit(1)


@db.command("snapshot")
@click.option("--dsn", default=None, help="database to snapshot")
@click.option("--release", required=True, help="release version to tag the snapshot with")
@click.option("--out", type=click.Path(path_type=Path), default=Path("snapshots"), help="folder for snapshots")
def snapshot(dsn: str | None, release: str, out: Path) -> None:
    """Take a pre-deploy snapshot tagged with a release version (with row counts and checksums)."""
    from gameday.database.dsn import Dsn
    from gameday.database.snapshot import take_snapshot

    taken = take_snapshot(Dsn.parse(dsn), out, release=release)
    rows = taken.state.total_rows if taken.state else 0
    console.print(f"snapshot {taken.path.parent} · {taken.size_bytes / 1e6:.1f} MB · {rows} rows · "
                  f"{taken.duration_s:.2f} s", highlight=False)


@db.group()
def migrations() -> None:
    """Migrations that provably roll back (alembic)."""


@migrations.command("check")
@click.option("--dsn", default=None, help="server for the scratch databases (default: a local throwaway Postgres); "
              "the database it names is only read")
@click.option("--script-location", type=click.Path(path_type=Path), default=None,
              help="alembic folder or alembic.ini (default: the demo service's migrations)")
@click.option("--revision", "revisions", multiple=True, help="check only these revisions")
@click.option("--rows", type=int, default=None, help="rows seeded per table (default: GAMEDAY_MIGRATIONS_SEED_ROWS)")
def migrations_check(dsn: str | None, script_location: Path | None, revisions: tuple[str, ...], rows: int | None) -> None:
    """Round-trip every revision on seeded data: exit 0 all reversible, 1 some are not, 2 bad input."""
    from gameday.database.migrations_check import DEFAULT_SEED_ROWS, check_migrations, render

    check = check_migrations(script_location, dsn=dsn, revisions=list(revisions) or None,
                             rows=rows or DEFAULT_SEED_ROWS)
    console.print(render(check))
    sys.exit(1 if check.not_reversible else 0)


@migrations.command("downgrade")
@click.option("--dsn", required=True, help="database to downgrade (must be a rehearsal database)")
@click.option("--to", "target", default="-1", show_default=True, help="target revision")
@click.option("--script-location", type=click.Path(path_type=Path), default=None, help="alembic folder or alembic.ini")
def migrations_downgrade(dsn: str, target: str, script_location: Path | None) -> None:
    """Run `alembic downgrade` as a rollback step and verify the revision after: exit 0 verified, 1 not."""
    from gameday.procedures.alembic_downgrade import alembic_downgrade

    result = alembic_downgrade(dsn, target, script_location=script_location, check=False)
    if result.ok:
        console.print(f"[green]downgraded[/green] {result.from_revision} → {result.revision_after} in {result.act_s:.2f} s",
                      highlight=False)
        sys.exit(0)
    for problem in result.problems():
        console.print(f"[red]downgrade failed:[/red] {problem}", highlight=False)
    sys.exit(1)
