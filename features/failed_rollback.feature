@kubernetes @rollback @escalation
Feature: When the rollback itself fails
  The runbook's rollback assumes the previous release can still run. When the registry's
  retention policy has already pruned it, or when the bad release changed what the previous
  one reads at start (a configuration key, a secret, the schema), `kubectl rollout undo`
  starts pods that never come up, the bad release keeps serving, and the runbook escalates:
  redeploy the last known-good build. We time how long it takes to see that the rollback is
  failing, and the escalation from there.

  Scenario: The previous image is gone, so the undo is stuck and a known-good build is redeployed
    Given the service "demo" runs release "1.0.0" with 3 replicas
    And steady traffic from 4 users
    And the registry no longer has release "1.0.0"
    When release "2.0.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer undoes the rollout of deployment "demo"
    Then the rollback of deployment "demo" is seen to fail within 60 seconds
    When the on-call engineer sets the image of deployment "demo" to release "1.1.0"
    Then all traffic is served by release "1.1.0" again within 90 seconds
    And deployment "demo" runs release "1.1.0"
    And the pods of deployment "demo" are Running with at most 0 restarts
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 180 s  |
      | recover | 60 s   |
      | total   | 300 s  |

  Scenario: The previous release crash-loops, so the undo is stuck and a known-good build is redeployed
    Given the service "demo" runs release "1.0.0" with 3 replicas
    And steady traffic from 4 users
    And release "1.0.0" can no longer start
    When release "2.0.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer undoes the rollout of deployment "demo"
    Then the rollback of deployment "demo" is seen to fail within 60 seconds
    When the on-call engineer sets the image of deployment "demo" to release "1.1.0"
    Then all traffic is served by release "1.1.0" again within 90 seconds
    And deployment "demo" runs release "1.1.0"
    And the pods of deployment "demo" are Running with at most 0 restarts
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 180 s  |
      | recover | 60 s   |
      | total   | 300 s  |
