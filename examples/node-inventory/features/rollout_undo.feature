@kubernetes @rollback @inventory
Feature: Undoing a bad inventory-api release with kubectl rollout undo
  Our runbook (features/runbook.md) says a release of inventory-api that starts failing
  requests is caught by the error-rate alarm and rolled back to the revision before it
  within five minutes of the deploy. We rehearse exactly that: 2.4.0 goes out broken so
  that half of its requests fail, under the storefront's usual traffic, and the on-call
  follows the runbook step by step while the clock runs.

  Background:
    Given the service "inventory-api" runs release "2.3.0" with 3 replicas
    And steady traffic from 4 users
    And a baseline of the golden signals is captured over 3 seconds

  Scenario: 2.4.0 fails half its requests and is undone to the previous revision
    When release "2.4.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer notes the previous revision in the rollout history of deployment "inventory-api"
    And the on-call engineer undoes the rollout of deployment "inventory-api" to the noted revision
    Then the rollout of deployment "inventory-api" completes within 120 seconds
    And deployment "inventory-api" runs release "2.3.0"
    And deployment "inventory-api" is back at the noted revision
    And all replicas of deployment "inventory-api" are ready
    And the pods of deployment "inventory-api" are Running with at most 0 restarts
    And all traffic is served by release "2.3.0" again within 60 seconds
    And p99 latency is back to baseline within 1 minute
    And the error rate stays below 1% for 5 seconds
    And the health endpoint of service "inventory-api" answers 200
    And the last 50 requests were served by release "2.3.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 120 s  |
      | recover | 60 s   |
      | total   | 300 s  |
