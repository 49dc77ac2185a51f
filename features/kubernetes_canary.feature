@kubernetes @rollback @canary
Feature: Draining a bad canary
  A canary release meets a slice of real traffic before anyone else does. When it goes
  bad, the runbook drains it in two moves (its weight down to 5 %, then to 0 %) and
  deletes its Deployment, and promises the whole rollback in under three minutes. We
  give a failing canary a fifth of the traffic under steady load and time the drain
  until every request is served by the stable release again.

  Scenario: A canary failing half of its requests is drained back to stable
    Given the service "demo" runs release "1.0.0" with 3 replicas on a stable track behind a virtual service
    And steady traffic from 4 users
    When release "2.0.0-errors" takes 20% of the traffic of service "demo" as a canary of 1 replica
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer sets the canary weight of service "demo" to 5%
    And the on-call engineer sets the canary weight of service "demo" to 0%
    And the on-call engineer deletes the canary deployment of service "demo"
    Then all traffic is served by release "1.0.0" again within 30 seconds
    And the canary of service "demo" is drained
    And the last 50 requests were served by release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 60 s   |
      | recover | 30 s   |
      | total   | 180 s  |
