@kubernetes @rollback @blue-green @inventory
Feature: Switching inventory-api back to the blue track
  During the holiday freeze inventory-api ships blue-green: the new release runs next to
  the old one and the Service is flipped over. Going back is a single selector change,
  so the runbook promises traffic on the old release within seconds of the decision.
  Here the green track carries a 2.4.0 that fails half of its requests.

  Scenario: Green fails requests and the Service goes back to blue
    Given blue runs release "2.3.0" and green runs release "2.4.0-errors" with 2 replicas each, service "inventory-api" on blue
    And steady traffic from 4 users
    When service "inventory-api" is switched to green
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer switches service "inventory-api" back to the blue track
    Then all traffic is served by release "2.3.0" again within 30 seconds
    And service "inventory-api" selects the blue track
    And the last 50 requests were served by release "2.3.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 10 s   |
      | recover | 30 s   |
      | total   | 120 s  |
