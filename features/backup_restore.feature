@database @backup
Feature: Backups that provably restore
  A backup nobody has restored is a hope, not a backup. Before each release the
  pipeline takes a snapshot of the orders database (a pg_dump, or a base backup of the
  whole server); here we restore it into a scratch server that is never the source and
  compare it table by table.

  Background:
    Given the orders database of the demo service with 10000 orders

  Scenario: The pre-deploy snapshot restores completely into a scratch instance
    Given a pre-deploy snapshot tagged with release "1.4.0"
    When the snapshot is restored into a scratch instance
    Then the restore completes within 60 seconds
    And every table has the same rows and content as at snapshot time
    And table "orders" has 10000 rows
    And the source database was not touched

  Scenario: The pre-deploy base backup starts as a copy and holds every order
    Given a pre-deploy base backup tagged with release "1.4.0"
    When the snapshot is restored into a scratch instance
    Then the restore completes within 60 seconds
    And every table has the same rows and content as at snapshot time
    And table "orders" has 10000 rows
    And the source database was not touched

  Scenario: Orders taken after the snapshot are what a restore would lose
    Given a pre-deploy snapshot tagged with release "1.4.0"
    And 250 more orders are written after the snapshot
    When the snapshot is restored into a scratch instance
    Then every table has the same rows and content as at snapshot time
    And the restore lost 250 orders written after the snapshot
    And the data loss window is at most 30 seconds

  Scenario: A backup truncated in storage is caught before anyone relies on it
    Given a pre-deploy snapshot tagged with release "1.4.0"
    And the snapshot file is truncated in storage
    When the snapshot is restored into a scratch instance
    Then the restore is reported as failed, naming the damaged archive
    And the source database was not touched
