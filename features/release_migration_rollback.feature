@kubernetes @database @migrations
Feature: Rolling back a release that migrated the database, under load
  A release often ships with a schema migration, run just before its rollout. When the
  release has to be rolled back, the code that comes back (N-1) meets the schema N left
  behind, while users keep placing orders. If the migration only added what N-1 can ignore
  (expand/contract), rolling the code back is enough and nothing written is lost. If it
  changed the schema in one step, N-1 fails on it until the migration is reversed too, and
  reversing it drops what N wrote. The order matters: reversing the migration while N
  still runs takes N down with it.

  Each scenario puts the service on a scratch database of its own, at the previous
  release's migration with seeded rows, and counts errors per endpoint while it happens.
  The alarm waits 8 seconds of errors, so the failing release has written orders of
  its own before it is rolled back.

  Scenario: An expand-only migration leaves the previous release working, so the code goes back alone
    Given the service "demo" keeps its data in a rehearsal database at migration 0001 with 1000 rows per table
    And the service "demo" runs release "1.0.0" with 3 replicas
    And steady traffic from 4 users
    When migration 0002 is applied and release "1.1.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 8 seconds fires within 60 seconds
    When the on-call engineer runs "kubectl rollout undo deployment/demo"
    Then all traffic is served by release "1.0.0" again within 60 seconds
    And "POST /api/orders" fails at most 1% of its requests for 3 seconds
    And the database is at revision 0002
    And the values of "orders.discount_cents" written during the incident are kept
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 60 s   |
      | recover | 60 s   |
      | total   | 240 s  |

  Scenario: A one-step migration breaks the previous release's writes, so the schema goes back too
    Given the service "demo" keeps its data in a rehearsal database at migration 0003 with 1000 rows per table
    And the service "demo" runs release "1.2.0" with 3 replicas
    And steady traffic from 4 users
    When migration 0004 is applied and release "1.3.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 8 seconds fires within 60 seconds
    When the on-call engineer runs "kubectl rollout undo deployment/demo"
    Then "POST /api/orders" fails more than 90% of its requests for 3 seconds
    And "GET /api/orders" fails at most 1% of its requests for 3 seconds
    When the on-call engineer rolls back migration 0004 with alembic downgrade
    Then all traffic is served by release "1.2.0" again within 60 seconds
    And "POST /api/orders" fails at most 1% of its requests for 3 seconds
    And the database is at revision 0003
    And the migration rollback dropped the values of "orders.currency" written during the incident
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 60 s   |
      | recover | 60 s   |
      | total   | 240 s  |

  Scenario: Reversing the migration before the code takes the failing release down completely
    Given the service "demo" keeps its data in a rehearsal database at migration 0003 with 1000 rows per table
    And the service "demo" runs release "1.2.0" with 3 replicas
    And steady traffic from 4 users
    When migration 0004 is applied and release "1.3.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer rolls back migration 0004 with alembic downgrade
    Then "GET /api/orders" fails more than 90% of its requests for 3 seconds
    When the on-call engineer runs "kubectl rollout undo deployment/demo"
    Then all traffic is served by release "1.2.0" again within 60 seconds
    And the database is at revision 0003
