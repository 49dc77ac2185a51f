@kubernetes @runbook
Feature: Is our runbook still current?
  Before a release, the runbook is run against a rehearsal of the service. A runbook
  nobody touched since the service was renamed, moved namespaces and left Argo CD has
  drifted; each finding names the line to fix. runbooks/demo-rollback-stale.md is such
  a runbook, kept stale on purpose; runbooks/demo-rollback.md is its current twin.

  Background:
    Given the service "demo" runs release "1.0.0" with 2 replicas
    And the service "demo" runs release "1.1.0" with 2 replicas

  Scenario: The current runbook runs clean against the rehearsal
    When runbook "runbooks/demo-rollback.md" is checked against the rehearsal
    Then the runbook check finds no drift

  Scenario: A stale runbook's drift is listed line by line
    When runbook "runbooks/demo-rollback-stale.md" is checked against the rehearsal
    Then the runbook check lists exactly this drift:
      | line | kind                |
      | 3    | stale               |
      | 9    | target-missed       |
      | 18   | missing-object      |
      | 19   | rejected-flag       |
      | 24   | unbound-placeholder |
      | 35   | missing-cli         |
      | 36   | missing-script      |
      | 42   | unmapped-host       |
      | 43   | missing-object      |
