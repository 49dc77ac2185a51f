@aws @ecs
Feature: Rolling an ECS service back to its previous task definition
  When a release goes bad on ECS, the on-call engineer sources the .rollback_state
  file the deploy pipeline left behind, points the service back at PREV_TASK with a
  forced new deployment and waits for services-stable. Behind the ECS API (moto) every
  task is a real process with real health checks, so "stable" means the previous
  release is really up and answering. Under load, users come through a load balancer
  whose targets are the healthy tasks, so a release that passes its health checks but
  fails requests reaches them, and the rollback is timed from the traffic itself; or
  the service rolls itself back when a declared rule holds.

  Scenario Outline: A broken release is rolled back to the previous task definition
    Given an ECS service "orders" running release 1.0.0 with 3 tasks
    When release <bad release> is deployed to the service
    Then the new deployment fails its health checks
    And the service does not become stable within 5 seconds
    Given the pipeline left a rollback state file pointing at the previous task definition
    When the on-call engineer rolls back to PREV_TASK from the rollback state file
    Then the service is stable again within 60 seconds
    And the service and its only deployment run the previous task definition
    And every task serves release 1.0.0

    Examples:
      | bad release   |
      | 2.0.0-crash   |
      | 2.0.0-unready |

  Scenario: A release failing half its requests behind the load balancer is rolled back under load
    Given an ECS service "orders" running release 1.0.0 with 3 tasks
    And steady traffic from 4 users through a load balancer in front of its tasks
    When release 2.0.0-errors is deployed to the service
    Then the load balancer's alarm for an error rate above 5% for 3 seconds fires within 60 seconds
    Given the pipeline left a rollback state file pointing at the previous task definition
    When the on-call engineer rolls back to PREV_TASK from the rollback state file
    Then the service is stable again within 60 seconds
    And all traffic through the load balancer is served by release 1.0.0 again within 30 seconds
    And the service and its only deployment run the previous task definition
    And the ECS rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | act     | 90 s   |
      | recover | 30 s   |
      | total   | 240 s  |

  Scenario: ECS rolls a release failing half its requests back by itself when the error-rate rule holds
    Given an ECS service "orders" running release 1.0.0 with 3 tasks
    And steady traffic from 4 users through a load balancer in front of its tasks
    And the ECS service rolls back automatically by rolling back to the previous task definition when one of these rules holds:
      | rule             | threshold | for |
      | error rate above | 5 %       | 3 s |
    When release 2.0.0-errors is deployed to the service
    Then the ECS automatic rollback fires within 60 seconds
    And the service is stable again within 60 seconds
    And all traffic through the load balancer is served by release 1.0.0 again within 30 seconds
    And the ECS rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 60 s   |
      | decide  | 2 s    |
      | act     | 90 s   |
      | total   | 240 s  |

  Scenario: A rollback state file without PREV_TASK stops the rollback before it starts
    Given an ECS service "orders" running release 1.0.0 with 2 tasks
    When release 2.0.0-crash is deployed to the service
    And the pipeline left a rollback state file without PREV_TASK
    Then the rollback is refused, naming PREV_TASK
    And the service still runs release 2.0.0-crash
