@kubernetes @rollback
Feature: Switching a blue-green release back
  With blue-green deploys the rollback is one selector change on the Service, so the
  runbook promises recovery in seconds. We cut the Service over to a green release that
  fails requests, let the alarm fire, and switch back to blue the way the runbook says.

  Scenario: Traffic goes back to blue with one kubectl patch
    Given blue runs release "1.0.0" and green runs release "2.0.0-errors" with 2 replicas each, service "demo" on blue
    And steady traffic from 4 users
    When service "demo" is switched to green
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer runs "kubectl patch service demo -p '{"spec":{"selector":{"app":"demo","track":"blue"}}}'"
    Then all traffic is served by release "1.0.0" again within 30 seconds
    And service "demo" selects the blue track
    And the last 50 requests were served by release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 10 s   |
      | recover | 30 s   |
      | total   | 120 s  |

  Scenario: By hand: blue scaled up, the Service pointed back, green scaled to zero
    Given blue runs release "1.0.0" and green runs release "2.0.0-errors" with 2 replicas each, service "demo" on blue
    And steady traffic from 4 users
    When service "demo" is switched to green
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer scales deployment "demo-blue" to 4 replicas
    And the on-call engineer switches service "demo" back to the blue track
    And the on-call engineer scales deployment "demo-green" to 0 replicas
    Then all traffic is served by release "1.0.0" again within 60 seconds
    And deployment "demo-blue" has 4 replicas ready
    And deployment "demo-green" has 0 replicas ready
    And service "demo" selects the blue track
    And the last 50 requests were served by release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 60 s   |
      | recover | 30 s   |
      | total   | 180 s  |
