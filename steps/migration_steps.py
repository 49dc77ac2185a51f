"""Steps for migration rollback rehearsals (alembic downgrade, reversibility round trips)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from gameday.database.migrations.rehearsal import MigrationRehearsal


@given(parsers.parse("a database at release {release} with migrations up to {revision} and {rows:d} seeded orders"),
       target_fixture="migration_rehearsal")
def database_at_release(database, journal, release, revision, rows):
    """A throwaway database migrated up to a revision, every table seeded, the data baseline recorded.
    Example: Given a database at release 1.2.0 with migrations up to 0003 and 10000 seeded orders"""
    rehearsal = MigrationRehearsal(database.dsn, journal=journal)
    journal.at_scenario_end(rehearsal.close)
    rehearsal.prepare(revision, rows=rows, release=release)
    return rehearsal


@given("the alembic migrations of the demo service", target_fixture="migration_rehearsal")
def demo_migrations(database, journal):
    """The demo service's alembic migrations, for reversibility checks on this database server.
    Example: Given the alembic migrations of the demo service"""
    rehearsal = MigrationRehearsal(database.dsn, journal=journal)
    journal.at_scenario_end(rehearsal.close)
    return rehearsal


@given(parsers.parse("release {release} has applied migration {revision}"))
def release_applied(migration_rehearsal, release, revision):
    """`alembic upgrade` to the release's migration, timed.
    Example: And release 1.3.0 has applied migration 0004"""
    migration_rehearsal.apply(revision)


@when(parsers.parse("the release migration {revision} is rolled back with alembic downgrade"))
def roll_back_migration(migration_rehearsal, revision):
    """`alembic downgrade` to the revision's parent, as the on-call would run it; a refusal is kept.
    Example: When the release migration 0004 is rolled back with alembic downgrade"""
    migration_rehearsal.roll_back(revision)


@when(parsers.parse("the round trip of revision {revision} is rehearsed on {rows:d} seeded rows per table"))
def round_trip(migration_rehearsal, revision, rows):
    """The reversibility check: upgrade, downgrade and compare schema and data on a seeded scratch database.
    Example: When the round trip of revision 0003 is rehearsed on 1000 seeded rows per table"""
    migration_rehearsal.check_revision(revision, rows=rows)


@then(parsers.re(r"the database is (still )?at revision (?P<revision>\w+)"))
def at_revision(migration_rehearsal, revision):
    """`alembic current` of the database ("is still at" after a refused rollback).
    Example: Then the database is at revision 0003"""
    migration_rehearsal.require_revision(revision)


@then(parsers.parse("its schema matches what revision {revision} creates"))
def schema_of_revision(migration_rehearsal, revision):
    """The rollback landed on the revision, and the schema equals what that revision creates.
    Example: And its schema matches what revision 0003 creates"""
    migration_rehearsal.require_schema_of(revision)


@then(parsers.parse("all {rows:d} seeded orders are unchanged"))
def orders_unchanged(migration_rehearsal, rows):
    """The orders table still has that many rows, and no data changed from the baseline.
    Example: And all 10000 seeded orders are unchanged"""
    migration_rehearsal.require_data_unchanged(rows, "orders")


@then(parsers.parse("the downgrade acted within {seconds:g} seconds"))
def acted_within(migration_rehearsal, seconds):
    """`alembic downgrade` itself (the rollback's "act") took at most the target.
    Example: And the downgrade acted within 10 seconds"""
    migration_rehearsal.require_act_within(seconds)


@then(parsers.parse('the rollback is refused with "{reason}"'))
def rollback_refused(migration_rehearsal, reason):
    """The downgrade failed, and its error says why.
    Example: Then the rollback is refused with "has no downgrade\""""
    migration_rehearsal.require_refused(reason)


@then(parsers.parse("the check reports revision {revision} as {classification}"))
def reports_classification(migration_rehearsal, revision, classification):
    """The round trip's verdict: reversible, lossy, irreversible, schema-drift or upgrade-failed.
    Example: Then the check reports revision 0003 as lossy"""
    migration_rehearsal.require_classification(revision, classification)


@then(parsers.parse('the check of revision {revision} mentions "{evidence}"'))
def check_mentions(migration_rehearsal, revision, evidence):
    """The verdict's evidence mentions a text: a column, an error, "equal after the round trip".
    Example: And the check of revision 0003 mentions "orders.legacy_note\""""
    migration_rehearsal.require_evidence(revision, evidence)


@then(parsers.parse("the upgrade to revision {revision} needs expand/contract"))
def needs_expand_contract(migration_rehearsal, revision):
    """The previous release breaks on the upgraded schema: ship the change as expand/contract.
    Example: And the upgrade to revision 0004 needs expand/contract"""
    migration_rehearsal.require_expand_contract(revision, needed=True)


@then(parsers.parse("the upgrade to revision {revision} is safe for the previous release"))
def safe_for_previous_release(migration_rehearsal, revision):
    """The previous release keeps working on the upgraded schema: no expand/contract needed.
    Example: And the upgrade to revision 0002 is safe for the previous release"""
    migration_rehearsal.require_expand_contract(revision, needed=False)
