@aws @rds @database
Feature: An RDS snapshot taken before a release restores with every row
  Before each release the pipeline takes a manual DB snapshot tagged with the release.
  The RDS calls go to moto (API state only); the same snapshot is taken of the real
  orders database and restored into a scratch server, so the data is proven too.

  Background:
    Given an RDS instance "orders-db" holding the orders database with 2000 orders

  Scenario: The pre-release snapshot restores to a scratch instance
    Given a manual DB snapshot of the instance tagged with release "1.4.0"
    When the DB snapshot is restored to the scratch instance "orders-db-restore-check"
    Then the scratch instance is available within 60 seconds
    And the DB snapshot is tagged with release "1.4.0"
    And every table of the restored data matches the snapshot
    And table "orders" has 2000 rows
    And the source database was not touched

  Scenario: A snapshot that is gone before the restore is noticed
    Given a manual DB snapshot of the instance tagged with release "1.4.0"
    And the DB snapshot is deleted before anyone restores it
    When the DB snapshot is restored to the scratch instance "orders-db-restore-check"
    Then the restore is refused, naming the missing DB snapshot
