@kubernetes @rollback @automatic
Feature: Rollbacks nobody has to type
  The runbook prefers the automatic path: the platform holds each new release against its
  rules (errors above 5 % for two minutes, p95 latency above twice the baseline for five,
  more than half of the health checks failing for one) and takes it out of traffic by itself
  when one holds. The rules here are the runbook's,
  with their durations compressed to seconds so a game day fits in minutes; what is timed
  is how long the automation takes to notice, decide and undo.

  Scenario: A release failing half of its requests is undone by the error-rate rule
    Given the service "demo" runs release "1.0.0" with 3 replicas
    And steady traffic from 4 users
    And the service "demo" rolls back automatically by undoing the rollout when one of these rules holds:
      | rule              | threshold    | for |
      | error rate above  | 5 %          | 4 s |
      | p95 latency above | 2 × baseline | 8 s |
    When release "2.0.0-errors" is rolled out
    Then the automatic rollback fires within 60 seconds
    And all traffic is served by release "1.0.0" again within 60 seconds
    And deployment "demo" runs release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase  | target |
      | detect | 60 s   |
      | decide | 2 s    |
      | total  | 180 s  |

  Scenario: A slow release is undone by the latency rule
    Given the service "demo" runs release "1.0.0" with 3 replicas
    And steady traffic from 4 users
    And the service "demo" rolls back automatically by undoing the rollout when one of these rules holds:
      | rule              | threshold    | for |
      | error rate above  | 5 %          | 4 s |
      | p95 latency above | 2 × baseline | 8 s |
    When release "2.0.0-slow" is rolled out
    Then the automatic rollback fires within 60 seconds
    And all traffic is served by release "1.0.0" again within 60 seconds
    And p95 latency is back to baseline within 30 seconds
    And time to rollback meets the runbook's targets:
      | phase  | target |
      | detect | 60 s   |
      | decide | 2 s    |
      | total  | 180 s  |

  Scenario: A failing canary is drained by the error-rate rule
    Given the service "demo" runs release "1.0.0" with 3 replicas on a stable track behind a virtual service
    And steady traffic from 4 users
    And the service "demo" rolls back automatically by draining the canary when one of these rules holds:
      | rule             | threshold | for |
      | error rate above | 5 %       | 4 s |
    When release "2.0.0-errors" takes 20% of the traffic of service "demo" as a canary of 1 replica
    Then the automatic rollback fires within 60 seconds
    And all traffic is served by release "1.0.0" again within 30 seconds
    And the last 50 requests were served by release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase  | target |
      | detect | 60 s   |
      | decide | 2 s    |
      | total  | 120 s  |

  Scenario: A release whose pods never pass their health checks is undone by the health-check rule
    Given the service "demo" runs release "1.0.0" with 3 replicas
    And steady traffic from 4 users
    And the service "demo" rolls back automatically by undoing the rollout when one of these rules holds:
      | rule                        | threshold | for |
      | error rate above            | 5 %       | 4 s |
      | health checks failing above | 20 %      | 4 s |
    When release "1.1.0" of deployment "demo" is rolled out with the fault "never-ready"
    Then the automatic rollback fires within 60 seconds
    And all traffic is served by release "1.0.0" again within 30 seconds
    And deployment "demo" runs release "1.0.0"
    And the last 50 requests were served by release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase  | target |
      | detect | 60 s   |
      | decide | 2 s    |
      | total  | 120 s  |
