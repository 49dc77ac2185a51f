"""`gameday db ...`: database rehearsals from the command line (the CI gate lives here)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

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
        table, sep, column = item.strip().rpartition(".")  # TABLE.COLUMN, or SCHEMA.TABLE.COLUMN
        if not sep or not column or not table or table.count(".") > 1 or not all(table.split(".")):
            raise ConfigError(f"--time-column {item!r} is not TABLE.COLUMN", fix="e.g. --time-column orders.created_at")
        if columns.get(table, column) != column:
            raise ConfigError(f"--time-column gives table {table} twice ({columns[table]} and {column})",
                              fix="give one write-time column per table")
        columns[table] = column
    return columns


_TIME_TYPE = "timestamp with time zone"


def _check_time_columns(source: object, columns: dict[str, str]) -> None:
    """Each --time-column is a timestamptz column of the source, checked before the snapshot is taken (a
    wrong one was found only when the RPO was measured, after the whole restore).  An unreachable
    source is left to the gate, which reports it as a failed verification (exit 1)."""
    if not columns:
        return
    import psycopg

    from gameday.database.checksums import qualify
    from gameday.database.dsn import Dsn
    from gameday.database.snapshot import SourceUnreachable, connect_source

    assert isinstance(source, Dsn)
    try:
        conn = connect_source(source)
    except SourceUnreachable:
        return
    try:
        conn.read_only = True
        for table, column in columns.items():
            schema, name = qualify(table).split(".", 1)
            found = dict(conn.execute(  # type: ignore[arg-type]
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", (schema, name)).fetchall())
            if not found:
                raise ConfigError(f"--time-column {table}.{column}: the source has no table {schema}.{name}",
                                  fix="name a table of the database --dsn points at")
            if column not in found:
                times = [c for c, kind in found.items() if kind == _TIME_TYPE]
                raise ConfigError(f"--time-column {table}.{column}: table {schema}.{name} has no column {column!r}",
                                  fix=f"its timestamptz columns: {', '.join(times)}" if times
                                  else f"table {schema}.{name} has no timestamptz column; leave --time-column out")
            if found[column] != _TIME_TYPE:
                raise ConfigError(f"--time-column {table}.{column} is {found[column]}, not {_TIME_TYPE}",
                                  fix="name the timestamptz column that records when each row was written")
    except psycopg.Error:
        return  # the source answers but not this question (permissions): the gate says what it can
    finally:
        conn.close()


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
@click.option("--globals", "globals_file", type=click.Path(path_type=Path), default=None,
              help="roles the backup needs, created before the restore: the output of pg_dumpall --roles-only "
              "--no-role-passwords (or --globals-only); a snapshot gameday takes captures them itself")
@click.option("--no-owner", is_flag=True, help="restore without owners and grants (when roles are not backed up)")
@click.option("--method", type=click.Choice(["logical", "physical"]), default="logical", show_default=True,
              help="logical: pg_dump, restored with pg_restore; physical: pg_basebackup of the whole server, "
                   "restored by starting a scratch server on a copy (the source must allow replication)")
@click.option("--reports", type=click.Path(path_type=Path), default=None, help="report folder root")
def verify_backup(dsn: str | None, backup: Path | None, expect: tuple[str, ...], smoke: tuple[str, ...],
                  time_column: tuple[str, ...], release: str, globals_file: Path | None, no_owner: bool,
                  method: str, reports: Path | None) -> None:
    """Prove a backup restores: exit 0 restored and verified, 1 verification failed, 2 bad input."""
    from gameday.database.backup import rehearse_backup
    from gameday.database.dsn import Dsn
    from gameday.paths import reports_folder
    from gameday.report import write_reports

    reports = reports_folder(reports)  # before the gate runs: its reports must have a place
    source = Dsn.parse(dsn)
    if not source.dbname:
        raise ConfigError("no database named in --dsn or PGDATABASE", fix="e.g. --dsn postgresql://user@host:5432/app")
    if globals_file is not None and no_owner:
        raise ConfigError("--globals and --no-owner exclude each other",
                          fix="--globals restores owners and grants, --no-owner drops them: pass one")
    if globals_file is not None and not globals_file.is_file():
        raise ConfigError(f"--globals {globals_file} not found",
                          fix="pass the output of pg_dumpall --roles-only --no-role-passwords")
    if method == "physical" and (globals_file is not None or no_owner):
        raise ConfigError("--method physical copies the whole server, roles included: --globals and --no-owner "
                          "do not apply", fix="drop --globals/--no-owner, or use --method logical")
    if backup is not None:
        from gameday.database.snapshot import Snapshot

        Snapshot.open(backup)  # missing, empty or not a pg_dump archive: exit 2 before anything starts
    expectations = _parse_expectations(expect)
    time_columns = _parse_time_columns(time_column)
    _check_time_columns(source, time_columns)
    journal = Journal(environment={"command": "db verify-backup", "source": source.redacted()})
    outcome = rehearse_backup(source, release=release, backup=backup, expect=expectations, smoke=list(smoke),
                              time_columns=time_columns, journal=journal, no_owner=no_owner,
                              globals_file=globals_file, method=method)
    journal.loose.finish(Status.PASSED if outcome.ok else Status.FAILED, None if outcome.ok else "; ".join(outcome.problems()))
    journal.finish()
    out = write_reports(journal, reports / journal.run_id)
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


_URL_ENV_HELP = ("an environment variable the project's env.py reads its database URL from (repeatable); it gets "
                 "the scratch URL. Every variable that could name a database is withheld from migrations")


def _from_project(config: Path | None, script_location: Path | None, url_env: tuple[str, ...], base_sql: Path | None,
                  base: str | None) -> tuple[Path | None, tuple[str, ...], Path | None, str | None]:
    """Without --script-location, the project file's migrations: block says where the alembic project is."""
    if script_location is not None:
        return script_location, url_env, base_sql, base
    from gameday import project as projects

    project = projects.load(config)
    block = project.model.migrations
    if block.script_location is None:
        return None, url_env, base_sql, base  # the demo service's migrations
    return (project.migrations_location(), (*block.url_env, *url_env),
            base_sql or (project.root / block.base_sql if block.base_sql else None), base or block.base)


_CONFIG_HELP = "project file whose migrations: block names the alembic project (default: as `gameday run`)"


@migrations.command("check")
@click.option("--dsn", default=None, help="server for the scratch databases (default: a local throwaway Postgres); "
              "the database it names is only read")
@click.option("--script-location", type=click.Path(path_type=Path), default=None,
              help="alembic folder or alembic.ini (default: the demo service's migrations)")
@click.option("--revision", "revisions", multiple=True, help="check only these revisions")
@click.option("--rows", type=click.IntRange(min=1), default=None,
              help="rows seeded per table (default: GAMEDAY_MIGRATIONS_SEED_ROWS)")
@click.option("--base-sql", type=click.Path(path_type=Path), default=None,
              help="SQL file creating the tables the application makes itself before alembic takes over")
@click.option("--base", default=None, metavar="MODULE:FUNCTION",
              help="function called with the scratch URL to create that base schema (e.g. myapp.db:create_all)")
@click.option("--url-env", multiple=True, metavar="NAME", help=_URL_ENV_HELP)
@click.option("--config", type=click.Path(path_type=Path), default=None, help=_CONFIG_HELP)
def migrations_check(dsn: str | None, script_location: Path | None, revisions: tuple[str, ...], rows: int | None,
                     base_sql: Path | None, base: str | None, url_env: tuple[str, ...], config: Path | None) -> None:
    """Round-trip every revision on seeded data: exit 0 all reversible, 1 some are not, 2 bad input.

    Verdicts print as they are reached; a revision that cannot be checked is a verdict
    (not-checkable, with the reason) and the check goes on."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gameday.database.migrations.check import DEFAULT_SEED_ROWS, check_migrations, render, verdict_line

    script_location, url_env, base_sql, base = _from_project(config, script_location, url_env, base_sql, base)
    columns = (TextColumn("revision"), MofNCompleteColumn(), BarColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("check", total=None)

        def progress(index: int, total: int, verdict) -> None:  # type: ignore[no-untyped-def]
            bar.update(task, completed=index, total=total)
            console.print(verdict_line(index, total, verdict), highlight=False)

        check = check_migrations(script_location, dsn=dsn, revisions=list(revisions) or None,
                                 rows=rows or DEFAULT_SEED_ROWS, base_sql=base_sql, base=base, url_env=url_env,
                                 progress=progress)
    console.print(render(check))
    sys.exit(1 if check.not_reversible else 0)


@migrations.command("downgrade")
@click.option("--dsn", required=True, help="database to downgrade (must be marked as a rehearsal target)")
@click.option("--to", "target", default="-1", show_default=True, help="target revision")
@click.option("--script-location", type=click.Path(path_type=Path), default=None, help="alembic folder or alembic.ini")
@click.option("--url-env", multiple=True, metavar="NAME", help=_URL_ENV_HELP)
@click.option("--config", type=click.Path(path_type=Path), default=None, help=_CONFIG_HELP)
def migrations_downgrade(dsn: str, target: str, script_location: Path | None, url_env: tuple[str, ...],
                         config: Path | None) -> None:
    """Run `alembic downgrade` as a rollback step and verify the revision after: exit 0 verified, 1 not.

    The database must be marked as a rehearsal target (COMMENT ON DATABASE ... IS 'gameday:rehearsal=true')."""
    from gameday.database.dsn import Dsn
    from gameday.database.existing import require_rehearsal_target
    from gameday.procedures.alembic_downgrade import alembic_downgrade

    require_rehearsal_target(Dsn.parse(dsn), what="--dsn database")
    script_location, url_env, _, _ = _from_project(config, script_location, url_env, None, None)

    result = alembic_downgrade(dsn, target, script_location=script_location, check=False, url_env=url_env)
    if result.ok:
        console.print(f"[green]downgraded[/green] {result.from_revision} → {result.revision_after} in {result.act_s:.2f} s",
                      highlight=False)
        sys.exit(0)
    for problem in result.problems():
        console.print(f"[red]downgrade failed:[/red] {problem}", highlight=False)
    sys.exit(1)
