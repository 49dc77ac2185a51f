"""Steps for backup and restore rehearsals."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from gameday.database.faults import truncate_archive
from gameday.database.seed import seed_orders


@given(parsers.parse("the orders database of the demo service with {count:d} orders"))
def orders_database(database, count):
    seed_orders(database.dsn, count)


@given(parsers.parse('a pre-deploy snapshot tagged with release "{release}"'))
def pre_deploy_snapshot(backup_rehearsal, release):
    backup_rehearsal.snapshot(release)


@given(parsers.parse("{count:d} more orders are written after the snapshot"))
def orders_after_snapshot(database, count):
    seed_orders(database.dsn, count)


@given("the snapshot file is truncated in storage")
def truncated_snapshot(backup_rehearsal):
    truncate_archive(backup_rehearsal.taken.path)


@when("the snapshot is restored into a scratch instance")
def restore_into_scratch(backup_rehearsal):
    backup_rehearsal.restore()


@then(parsers.parse("the restore completes within {seconds:g} seconds"))
def restore_within(backup_rehearsal, seconds):
    backup_rehearsal.require_restore_within(seconds)


@then("every table has the same rows and content as at snapshot time")
def same_as_snapshot(backup_rehearsal):
    backup_rehearsal.require_matches_snapshot()


@then(parsers.parse('table "{table}" has {rows:d} rows'))
def table_rows(backup_rehearsal, table, rows):
    backup_rehearsal.require_rows(table, rows)


@then(parsers.parse("the restore lost {rows:d} orders written after the snapshot"))
def lost_orders(backup_rehearsal, rows):
    backup_rehearsal.require_lost_rows(rows)


@then(parsers.parse("the data loss window is at most {seconds:g} seconds"))
def loss_window(backup_rehearsal, seconds):
    backup_rehearsal.require_loss_window_within(seconds)


@then("the restore is reported as failed, naming the damaged archive")
def restore_failed(backup_rehearsal):
    backup_rehearsal.require_restore_failed(reason_contains="corrupt or truncated")


@then("the source database was not touched")
def source_untouched(backup_rehearsal):
    backup_rehearsal.require_source_untouched()
