@database @migrations
Feature: Migrations that provably roll back
  Rolling a release back means rolling its schema migration back too, in the middle
  of an incident, with production data in the tables. We rehearse `alembic downgrade`
  on a throwaway copy of the orders database that has data in every column, then
  check that it lands on the previous revision's schema without losing a row, and how
  long the rollback takes. Every migration of the demo service is also put through a
  round trip (upgrade, downgrade, compare) so a lossy or missing downgrade is found at
  review time, not at 3 a.m.

  Scenario: Rolling back release 1.3.0's migration restores the 1.2.0 schema and keeps every order
    Given a database at release 1.2.0 with migrations up to 0003 and 10000 seeded orders
    And release 1.3.0 has applied migration 0004
    When the release migration 0004 is rolled back with alembic downgrade
    Then the database is at revision 0003
    And its schema matches what revision 0003 creates
    And all 10000 seeded orders are unchanged
    And the downgrade acted within 10 seconds

  Scenario: A release migration without a downgrade is caught in rehearsal, with no harm done
    Given a database at release 1.3.0 with migrations up to 0004 and 10000 seeded orders
    And release 1.4.0 has applied migration 0005
    When the release migration 0005 is rolled back with alembic downgrade
    Then the rollback is refused with "has no downgrade"
    And the database is still at revision 0005
    And all 10000 seeded orders are unchanged

  Scenario Outline: Release migration <revision> is checked by a round trip on seeded data
    Given the alembic migrations of the demo service
    When the round trip of revision <revision> is rehearsed on 1000 seeded rows per table
    Then the check reports revision <revision> as <round trip>
    And the check of revision <revision> mentions "<evidence>"
    And the upgrade to revision <revision> <previous release>

    Examples:
      | revision | round trip   | evidence                      | previous release                           |
      | 0002     | reversible   | equal after the round trip    | is safe for the previous release           |
      | 0003     | lossy        | orders.legacy_note            | needs expand/contract                      |
      | 0004     | reversible   | equal after the round trip    | needs expand/contract                      |
      | 0005     | irreversible | NotImplementedError           | is safe for the previous release           |
