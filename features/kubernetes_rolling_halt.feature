@kubernetes @rollback @rolling
Feature: Halting a rolling update part way and reverting the pods it replaced
  A rolling update replaces one pod at a time and watches each before the next, so a bad
  release caught early has only reached a few pods. The runbook halts the rollout at once
  (pause), points the Deployment back at the previous release, and resumes, letting each
  reverted pod prove itself before the next; it promises all of that within five minutes.

  Scenario: A release failing half its requests is halted after its first pods and reverted
    Given the service "demo" runs release "1.0.0" with 4 replicas
    And steady traffic from 4 users
    When release "2.0.0-errors" is rolled out one pod at a time, each watched for 10 seconds
    Then the alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    When the on-call engineer pauses the rollout of deployment "demo"
    Then the rollout of deployment "demo" is halted part way
    When the on-call engineer sets the image of deployment "demo" to release "1.0.0"
    And the on-call engineer resumes the rollout of deployment "demo"
    Then all traffic is served by release "1.0.0" again within 90 seconds
    And no pod of deployment "demo" runs release "2.0.0-errors"
    And the runbook's success criteria hold for 5 seconds:
      | criterion   | bound     |
      | error rate  | < 1 %     |
      | p99 latency | < 2000 ms |
      | replicas    | match     |
      | restarts    | 0         |
    And the last 50 requests were served by release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 120 s  |
      | recover | 60 s   |
      | total   | 300 s  |
