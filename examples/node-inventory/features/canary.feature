@kubernetes @rollback @canary @inventory
Feature: Draining a bad inventory-api canary
  Outside the freeze inventory-api ships as a canary: the new release takes a fifth of
  the traffic through the mesh while the old one keeps the rest. A canary that fails
  requests is walked down to 5 %, then to nothing, and its Deployment removed.

  Scenario: A 2.4.0 canary failing half its requests is drained back to 2.3.0
    Given the service "inventory-api" runs release "2.3.0" with 3 replicas on a stable track behind a virtual service
    And steady traffic from 4 users
    When release "2.4.0-errors" takes 20% of the traffic of service "inventory-api" as a canary of 1 replica
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer sets the canary weight of service "inventory-api" to 5%
    And the on-call engineer sets the canary weight of service "inventory-api" to 0%
    And the on-call engineer deletes the canary deployment of service "inventory-api"
    Then all traffic is served by release "2.3.0" again within 30 seconds
    And the canary of service "inventory-api" is drained
    And the last 50 requests were served by release "2.3.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 60 s   |
      | recover | 30 s   |
      | total   | 180 s  |
