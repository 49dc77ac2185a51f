@kubernetes @rollback @feature-flag
Feature: The kill switch first, the image revert only if it does not help
  When a release's new code path misbehaves, the runbook's first move is its feature
  flag: turned off, the path stops without a redeploy, in seconds. Only when the flag
  does not gate what is failing does the on-call go on to revert the image. Both
  branches are rehearsed here under steady traffic, each against its own targets.

  Background:
    Given the service "demo" runs release "1.0.0" with 3 replicas
    And feature flag "new-pricing" of service "demo" is on
    And steady traffic from 4 users

  Scenario: The flag gates the failing path, so turning it off ends the errors without a redeploy
    When release "1.1.0" of deployment "demo" is rolled out with the fault "error-rate=0.5,flag=new-pricing"
    Then the alarm for an error rate above 5% for 3 seconds fires within 90 seconds
    When the on-call engineer turns feature flag "new-pricing" of service "demo" off
    Then the error rate is back below 1% within 30 seconds
    And deployment "demo" was not redeployed
    And the last 50 requests were served by release "1.1.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 90 s   |
      | act     | 10 s   |
      | recover | 30 s   |
      | total   | 150 s  |

  Scenario: The flag does not gate the failing path, so the release is reverted after all
    When release "1.1.0" of deployment "demo" is rolled out with the fault "error-rate=0.5"
    Then the alarm for an error rate above 5% for 3 seconds fires within 90 seconds
    When the on-call engineer turns feature flag "new-pricing" of service "demo" off
    Then the error rate stays above 5% for 5 seconds
    When the on-call engineer undoes the rollout of deployment "demo"
    Then all traffic is served by release "1.0.0" again within 60 seconds
    And deployment "demo" runs release "1.0.0"
    And time to rollback meets the runbook's targets:
      | phase   | target |
      | detect  | 90 s   |
      | act     | 90 s   |
      | recover | 60 s   |
      | total   | 240 s  |
