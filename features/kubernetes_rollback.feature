@kubernetes @rollback
Feature: Rolling back a bad release on Kubernetes
  The runbook promises that a release which starts failing requests is caught by the
  error-rate alarm and rolled back with `kubectl rollout undo` within minutes. We ship
  a release that fails half of its requests under steady traffic and time the rollback
  from the bad deploy to the moment every request is served by the stable release again.

  Background:
    Given the service "demo" runs release "1.0.0" with 3 replicas
    And steady traffic from 4 users

  Scenario: A release answering errors is undone with kubectl rollout undo
    When release "2.0.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 3 seconds fires within 90 seconds
    When the on-call engineer runs "kubectl rollout undo deployment/demo"
    Then all traffic is served by release "1.0.0" again within 60 seconds
    And deployment "demo" runs release "1.0.0"
    And the last 50 requests were served by release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase   | target  |
      | detect  | 90 s    |
      | act     | 90 s    |
      | recover | 60 s    |
      | total   | 240 s   |
