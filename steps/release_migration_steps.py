"""Steps for a release that migrated the service's database, rolled back under load on Kubernetes.

The service's pods read a scratch database gameday started (the project file names the
variable: ``database: {env: DATABASE_URL}``); the migrations are the project's alembic history.
The migration steps of that database (``the database is at revision ...``) apply to it too.
"""

from __future__ import annotations

from gameday.steps._words import step
from pytest_bdd import given, then, when

from gameday.rehearsals import kubernetes_checks as check

NAMES = {"service": "database-service", "release": "release", "endpoint": "endpoint"}


@given(step('the service "{service}" keeps its data in a rehearsal database at migration {revision} '
            'with {rows:d} rows per table'), target_fixture="migration_rehearsal")
def service_database(database, kubernetes_rehearsal, service, revision, rows):
    """A scratch database for the service's pods (a Secret under its variable), migrated and every table seeded.
    Example: Given the service "checkout-api" keeps its data in a rehearsal database at migration 0003 with 1000 rows per table"""
    return kubernetes_rehearsal.give_database(service, database.dsn, revision, rows).migrations


@when(step('migration {revision} is applied and release "{release}" is rolled out'))
def migrate_and_roll_out(kubernetes_rehearsal, revision, release):
    """The release begins (t0) with `alembic upgrade` under the previous release's traffic, then its rollout.
    Example: When migration 0004 is applied and release "1.3.0" is rolled out"""
    kubernetes_rehearsal.roll_out_with_migration(revision, release)


@when(step("the on-call engineer rolls back migration {revision} with alembic downgrade"))
def downgrade_under_load(kubernetes_rehearsal, revision):
    """`alembic downgrade` of the release's migration while traffic runs; revision and schema verified.
    Example: When the on-call engineer rolls back migration 0004 with alembic downgrade"""
    kubernetes_rehearsal.roll_back_migration(revision)


@then(step('"{endpoint}" fails more than {percent:g}% of its requests for {seconds:Duration}'))
def endpoint_keeps_failing(kubernetes_rehearsal, endpoint, percent, seconds):
    """Once the rollouts are done, that endpoint alone keeps failing (the previous release on the new schema).
    Example: Then "POST /api/orders" fails more than 50% of its requests for 3 seconds"""
    check.endpoint_failing(kubernetes_rehearsal, endpoint, percent, seconds, fails=True)


@then(step('"{endpoint}" fails at most {percent:g}% of its requests for {seconds:Duration}'))
def endpoint_healthy(kubernetes_rehearsal, endpoint, percent, seconds):
    """Once the rollouts are done, that endpoint alone fails at most X % of its requests, held S seconds.
    Example: Then "POST /api/orders" fails at most 1% of its requests for 3 seconds"""
    check.endpoint_failing(kubernetes_rehearsal, endpoint, percent, seconds, fails=False)


@then(step('the migration rollback dropped the values of "{column}" written during the incident'))
def values_dropped(kubernetes_rehearsal, column):
    """The downgrade dropped a column the release wrote: its values in the rows written since t0 are gone (counted).
    Example: And the migration rollback dropped the values of "orders.currency" written during the incident"""
    kubernetes_rehearsal.database().require_dropped(column)


@then(step('the values of "{column}" written during the incident are kept'))
def values_kept(kubernetes_rehearsal, column):
    """The migration stayed: rows written since t0 still hold their values of the column (counted).
    Example: And the values of "orders.discount_cents" written during the incident are kept"""
    kubernetes_rehearsal.database().require_kept(column)
