@kubernetes @rollback @inventory @runbook
Feature: The on-call follows our runbook, word for word
  features/runbook.md is what the on-call opens at 3 a.m. This game day proves it still
  works: 2.4.0 goes out broken under the storefront's traffic and the on-call runs the
  "Roll back" section exactly as written (note the revision, undo to it, wait for the
  rollout). Its own execution is the act phase, held to the runbook's targets.

  Scenario: 2.4.0 fails half its requests and the runbook's "Roll back" section undoes it
    Given the service "inventory-api" runs release "2.3.0" with 2 replicas
    And steady traffic from 4 users
    When release "2.4.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer follows section "Roll back" of runbook "features/runbook.md"
    Then deployment "inventory-api" runs release "2.3.0"
    And all traffic is served by release "2.3.0" again within 60 seconds
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 120 s  |
      | recover | 60 s   |
      | total   | 5 min  |
