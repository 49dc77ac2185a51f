@kubernetes @rollback @runbook
Feature: The rollback runbook, followed as written
  A scheduled game day proves two things at once: that the service recovers from a bad
  release, and that the runbook written for that moment still works. Here the on-call
  does not type commands of their own: they follow the "Roll back" section of
  runbooks/demo-rollback.md, exactly as written, against the rehearsal and under load.
  The act phase is the runbook's own execution time.

  Scenario: A release answering errors is rolled back by following the runbook
    Given the service "demo" runs release "1.0.0" with 2 replicas
    And steady traffic from 4 users
    When release "2.0.0-errors" is rolled out
    Then the alarm for an error rate above 5% for 3 seconds fires within 90 seconds
    When the on-call engineer follows section "Roll back" of runbook "runbooks/demo-rollback.md"
    Then all traffic is served by release "1.0.0" again within 60 seconds
    And deployment "demo" runs release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase   | target  |
      | detect  | 90 s    |
      | act     | 120 s   |
      | recover | 60 s    |
      | total   | 300 s   |
