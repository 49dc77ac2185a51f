@kubernetes @rollback @automatic @inventory
Feature: inventory-api undoes a bad release by itself
  The platform team's analysis holds every inventory-api release to two rules: errors above
  5 % and p95 latency above twice the baseline, each for a while. Compressed to seconds for
  the game day; the rules and the undo are the ones production uses.

  Scenario: 2.4.0 fails half its requests and the error-rate rule undoes it
    Given the service "inventory-api" runs release "2.3.0" with 3 replicas
    And steady traffic from 4 users
    And the service "inventory-api" rolls back automatically by undoing the rollout when one of these rules holds:
      | rule              | threshold    | for |
      | error rate above  | 5 %          | 4 s |
      | p95 latency above | 2 × baseline | 8 s |
    When release "2.4.0-errors" is rolled out
    Then the automatic rollback fires within 60 seconds
    And all traffic is served by release "2.3.0" again within 60 seconds
    And deployment "inventory-api" runs release "2.3.0"
    And time to rollback meets the runbook's targets:
      | phase  | target |
      | detect | 60 s   |
      | decide | 2 s    |
      | total  | 180 s  |
