"""Steps for backup and restore rehearsals."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from gameday.database.faults import truncate_archive
from gameday.database.seed import seed_orders


@given(parsers.parse("the orders database of the demo service with {count:d} orders"))
def orders_database(database, count):
    """The demo service's orders database, seeded with that many orders.
    Example: Given the orders database of the demo service with 10000 orders"""
    seed_orders(database.dsn, count)


@given(parsers.parse('a pre-deploy snapshot tagged with release "{release}"'))
def pre_deploy_snapshot(backup_rehearsal, release):
    """The pipeline's pre-deploy backup (pg_dump) of the source database, tagged with the release.
    Example: Given a pre-deploy snapshot tagged with release "1.4.0\""""
    backup_rehearsal.snapshot(release)


@given(parsers.parse('a pre-deploy base backup tagged with release "{release}"'))
def pre_deploy_base_backup(backup_rehearsal, release):
    """The physical kind of pre-deploy backup: pg_basebackup of the whole server, restored by starting a
    scratch server on a copy of it (no dump to parse, no index to rebuild).
    Example: Given a pre-deploy base backup tagged with release "1.4.0\""""
    backup_rehearsal.snapshot(release, method="physical")


@given(parsers.parse("{count:d} more orders are written after the snapshot"))
def orders_after_snapshot(database, count):
    """Writes that land after the backup: what a restore would lose (RPO).
    Example: And 250 more orders are written after the snapshot"""
    seed_orders(database.dsn, count)


@given("the snapshot file is truncated in storage")
def truncated_snapshot(backup_rehearsal):
    """The backup archive is cut short in storage, as an interrupted copy leaves it.
    Example: And the snapshot file is truncated in storage"""
    truncate_archive(backup_rehearsal.taken.path)


@when("the snapshot is restored into a scratch instance")
def restore_into_scratch(backup_rehearsal):
    """Restore the backup into a fresh scratch server, never the source, and verify it; a failure is kept.
    Example: When the snapshot is restored into a scratch instance"""
    backup_rehearsal.restore()


@then(parsers.parse("the restore completes within {seconds:g} seconds"))
def restore_within(backup_rehearsal, seconds):
    """Restore time (RTO) at most the target.
    Example: Then the restore completes within 60 seconds"""
    backup_rehearsal.require_restore_within(seconds)


@then("every table has the same rows and content as at snapshot time")
def same_as_snapshot(backup_rehearsal):
    """Every table of the restored copy equals the snapshot: row counts and checksums.
    Example: And every table has the same rows and content as at snapshot time"""
    backup_rehearsal.require_matches_snapshot()


@then(parsers.parse('table "{table}" has {rows:d} rows'))
def table_rows(backup_rehearsal, table, rows):
    """The row count of one table in the restored copy.
    Example: And table "orders" has 10000 rows"""
    backup_rehearsal.require_rows(table, rows)


@then(parsers.parse("the restore lost {rows:d} orders written after the snapshot"))
def lost_orders(backup_rehearsal, rows):
    """The rows written after the snapshot that the restored copy does not have.
    Example: And the restore lost 250 orders written after the snapshot"""
    backup_rehearsal.require_lost_rows(rows)


@then(parsers.parse("the data loss window is at most {seconds:g} seconds"))
def loss_window(backup_rehearsal, seconds):
    """Data loss window (RPO): the seconds of writes a restore loses, at most the target.
    Example: And the data loss window is at most 30 seconds"""
    backup_rehearsal.require_loss_window_within(seconds)


@then("the restore is reported as failed, naming the damaged archive")
def restore_failed(backup_rehearsal):
    """The damaged backup fails the restore as corrupt or truncated instead of restoring quietly.
    Example: Then the restore is reported as failed, naming the damaged archive"""
    backup_rehearsal.require_restore_failed(reason_contains="corrupt or truncated")


@then("the source database was not touched")
def source_untouched(backup_rehearsal):
    """The source database is as it was at snapshot time: the rehearsal never wrote to it.
    Example: And the source database was not touched"""
    backup_rehearsal.require_source_untouched()
