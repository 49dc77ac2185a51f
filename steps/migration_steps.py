"""Steps for migration rollback rehearsals (alembic downgrade, reversibility round trips)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from gameday.database.migrations_rehearsal import MigrationRehearsal


@given(parsers.parse("a database at release {release} with migrations up to {revision} and {rows:d} seeded orders"),
       target_fixture="migration_rehearsal")
def database_at_release(database, journal, release, revision, rows):
    rehearsal = MigrationRehearsal(database.dsn, journal=journal)
    rehearsal.prepare(revision, rows=rows, release=release)
    return rehearsal


@given("the alembic migrations of the demo service", target_fixture="migration_rehearsal")
def demo_migrations(database, journal):
    return MigrationRehearsal(database.dsn, journal=journal)


@given(parsers.parse("release {release} has applied migration {revision}"))
def release_applied(migration_rehearsal, release, revision):
    migration_rehearsal.apply(revision)


@when(parsers.parse("the release migration {revision} is rolled back with alembic downgrade"))
def roll_back_migration(migration_rehearsal, revision):
    migration_rehearsal.roll_back(revision)


@when(parsers.parse("the round trip of revision {revision} is rehearsed on {rows:d} seeded rows per table"))
def round_trip(migration_rehearsal, revision, rows):
    migration_rehearsal.check_revision(revision, rows=rows)


@then(parsers.re(r"the database is (still )?at revision (?P<revision>\w+)"))
def at_revision(migration_rehearsal, revision):
    migration_rehearsal.require_revision(revision)


@then(parsers.parse("its schema matches what revision {revision} creates"))
def schema_of_revision(migration_rehearsal, revision):
    migration_rehearsal.require_schema_of(revision)


@then(parsers.parse("all {rows:d} seeded orders are unchanged"))
def orders_unchanged(migration_rehearsal, rows):
    migration_rehearsal.require_data_unchanged(rows, "orders")


@then(parsers.parse("the downgrade acted within {seconds:g} seconds"))
def acted_within(migration_rehearsal, seconds):
    migration_rehearsal.require_act_within(seconds)


@then(parsers.parse('the rollback is refused with "{reason}"'))
def rollback_refused(migration_rehearsal, reason):
    migration_rehearsal.require_refused(reason)


@then(parsers.parse("the check reports revision {revision} as {classification}"))
def reports_classification(migration_rehearsal, revision, classification):
    migration_rehearsal.require_classification(revision, classification)


@then(parsers.parse('the check of revision {revision} mentions "{evidence}"'))
def check_mentions(migration_rehearsal, revision, evidence):
    migration_rehearsal.require_evidence(revision, evidence)


@then(parsers.parse("the upgrade to revision {revision} needs expand/contract"))
def needs_expand_contract(migration_rehearsal, revision):
    migration_rehearsal.require_expand_contract(revision, needed=True)


@then(parsers.parse("the upgrade to revision {revision} is safe for the previous release"))
def safe_for_previous_release(migration_rehearsal, revision):
    migration_rehearsal.require_expand_contract(revision, needed=False)
