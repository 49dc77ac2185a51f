"""Steps for AWS rehearsals: ECS rollback (staging checklist) and RDS snapshot restore."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from gameday.database.seed import seed_orders
from gameday.load import ErrorRateAbove
from gameday.rehearsals.automatic import AutomaticRollback, action_from_text, rules_from_table
from gameday.timeline import targets_from_table

# -- ECS --------------------------------------------------------------------------------


@given(parsers.parse('an ECS service "{name}" running release {version} with {tasks:d} tasks'))
def ecs_service_running(ecs_rehearsal, name, version, tasks):
    """Create the ECS service on a release and wait for services-stable; its tasks are real processes.
    Example: Given an ECS service "orders" running release 1.0.0 with 3 tasks"""
    ecs_rehearsal.start(version, tasks, name=name)


@when(parsers.parse("release {version} is deployed to the service"))
def release_deployed(ecs_rehearsal, version):
    """The bad deploy (t0): update-service to a new task definition of the release (e.g. 2.0.0-crash).
    Example: When release 2.0.0-crash is deployed to the service"""
    ecs_rehearsal.deploy(version)


@then("the new deployment fails its health checks")
def deployment_fails(ecs_rehearsal):
    """The new deployment has failed tasks: they crash or fail their container health checks.
    Example: Then the new deployment fails its health checks"""
    ecs_rehearsal.expect_deploy_failing()


@then(parsers.parse("the service does not become stable within {seconds:g} seconds"))
def not_stable(ecs_rehearsal, seconds):
    """`aws ecs wait services-stable` times out on the bad release (else there is nothing to roll back).
    Example: And the service does not become stable within 5 seconds"""
    ecs_rehearsal.require_not_stable_for(seconds)


@given("the pipeline left a rollback state file pointing at the previous task definition")
@when("the pipeline left a rollback state file pointing at the previous task definition")
def rollback_state_left(ecs_rehearsal):
    """The deploy pipeline's .rollback_state file, PREV_TASK being the task definition before the bad release.
    Example: And the pipeline left a rollback state file pointing at the previous task definition"""
    ecs_rehearsal.leave_rollback_state()


@given(parsers.parse("the pipeline left a rollback state file without {field_name}"))
@when(parsers.parse("the pipeline left a rollback state file without {field_name}"))
def rollback_state_incomplete(ecs_rehearsal, field_name):
    """A half-finished pipeline: the .rollback_state file lacks one field (PREV_TASK, PREV_SHA, ...).
    Example: And the pipeline left a rollback state file without PREV_TASK"""
    ecs_rehearsal.leave_rollback_state()
    ecs_rehearsal.break_rollback_state(field_name)


@when("the on-call engineer rolls back to PREV_TASK from the rollback state file")
def roll_back(ecs_rehearsal):
    """Checklist step 7: source .rollback_state, then `aws ecs update-service` to $PREV_TASK, forced.
    Example: When the on-call engineer rolls back to PREV_TASK from the rollback state file"""
    ecs_rehearsal.roll_back()


@then(parsers.parse("the service is stable again within {seconds:g} seconds"))
def stable_again(ecs_rehearsal, seconds):
    """`aws ecs wait services-stable` after the rollback, bounded; time-to-stable counts from the update.
    Example: Then the service is stable again within 60 seconds"""
    ecs_rehearsal.require_stable_within(seconds)


@then("the service and its only deployment run the previous task definition")
def service_on_previous(ecs_rehearsal):
    """describe-services: the service and its single deployment point at PREV_TASK.
    Example: And the service and its only deployment run the previous task definition"""
    ecs_rehearsal.verify_service()


@then(parsers.parse("every task serves release {version}"))
def tasks_serve(ecs_rehearsal, version):
    """Real HTTP requests to every running task: each answers with the release.
    Example: And every task serves release 1.0.0"""
    ecs_rehearsal.verify_traffic(version)


@then(parsers.parse("the rollback is refused, naming {field_name}"))
def rollback_refused(ecs_rehearsal, field_name):
    """The rollback stops before update-service, and its error names the missing or bad field.
    Example: Then the rollback is refused, naming PREV_TASK"""
    ecs_rehearsal.require_rollback_refused(naming=field_name)


@then(parsers.parse("the service still runs release {version}"))
def still_runs(ecs_rehearsal, version):
    """The service's task definition is still the release: a refused rollback changed nothing.
    Example: And the service still runs release 2.0.0-crash"""
    ecs_rehearsal.require_running(version)


# -- RDS ---------------------------------------------------------------------------------


@given(parsers.parse('an RDS instance "{name}" holding the orders database with {count:d} orders'))
def rds_instance(rds_rehearsal, database, name, count):
    """The RDS instance the release writes to, its orders database seeded with that many orders.
    Example: Given an RDS instance "orders-db" holding the orders database with 2000 orders"""
    rds_rehearsal.create_instance(name)
    seed_orders(database.dsn, count)


@given(parsers.parse('a manual DB snapshot of the instance tagged with release "{release}"'))
def manual_snapshot(rds_rehearsal, release):
    """The pre-release manual DB snapshot, tagged release=<release>, plus a real dump of the data.
    Example: Given a manual DB snapshot of the instance tagged with release "1.4.0\""""
    rds_rehearsal.snapshot(release)


@given("the DB snapshot is deleted before anyone restores it")
def snapshot_deleted(rds_rehearsal):
    """The snapshot disappears before the restore (retention job, wrong account): the restore must notice.
    Example: And the DB snapshot is deleted before anyone restores it"""
    rds_rehearsal.delete_snapshot()


@when(parsers.parse('the DB snapshot is restored to the scratch instance "{scratch}"'))
def restore_to_scratch(rds_rehearsal, scratch):
    """Restore the DB snapshot to a scratch instance (never the source), then its data; a refusal is kept.
    Example: When the DB snapshot is restored to the scratch instance "orders-db-restore-check\""""
    rds_rehearsal.restore(scratch)


@then(parsers.parse("the scratch instance is available within {seconds:g} seconds"))
def scratch_available(rds_rehearsal, seconds):
    """The scratch instance is "available", and got there within the time.
    Example: Then the scratch instance is available within 60 seconds"""
    rds_rehearsal.require_scratch_available(seconds)


@then(parsers.parse('the DB snapshot is tagged with release "{release}"'))
def snapshot_tagged(rds_rehearsal, release):
    """The DB snapshot carries the release tag the pipeline gave it.
    Example: And the DB snapshot is tagged with release "1.4.0\""""
    rds_rehearsal.require_snapshot_tagged(release)


@then("every table of the restored data matches the snapshot")
def restored_data_matches(rds_rehearsal):
    """Every table of the restored data equals the snapshot: row counts and checksums.
    Example: And every table of the restored data matches the snapshot"""
    rds_rehearsal.require_data_matches()


@then("the restore is refused, naming the missing DB snapshot")
def restore_refused(rds_rehearsal):
    """RDS refused the restore, and the error names the snapshot that is gone.
    Example: Then the restore is refused, naming the missing DB snapshot"""
    rds_rehearsal.require_restore_refused(naming=rds_rehearsal.snapshot_id or "snapshot")


# -- under load, through a load balancer in front of the tasks ---------------------------------
@given(parsers.parse("steady traffic from {users:d} users through a load balancer in front of its tasks"))
def ecs_traffic(ecs_rehearsal, users):
    """The service's own load (project file) through a local load balancer whose targets are the
    RUNNING, HEALTHY tasks (read from the ECS API every 0.25 s); a clean baseline first.
    Example: And steady traffic from 4 users through a load balancer in front of its tasks"""
    ecs_rehearsal.start_traffic(users)


@then(parsers.parse("the load balancer's alarm for an error rate above {percent:g}% for {seconds:g} seconds "
                    "fires within {timeout:g} seconds"))
def ecs_alarm(ecs_rehearsal, percent, seconds, timeout):
    """The alarm rule on the traffic through the load balancer, from the deploy on (detect).
    Example: Then the load balancer's alarm for an error rate above 5% for 3 seconds fires within 60 seconds"""
    ecs_rehearsal.require_traffic().wait_for_alarm(ErrorRateAbove(threshold=percent / 100, for_seconds=seconds),
                                                   timeout)


@then(parsers.parse("all traffic through the load balancer is served by release {version} again within "
                    "{timeout:g} seconds"))
def ecs_recovered(ecs_rehearsal, version, timeout):
    """Recovery: errors at most 1 % and every request served by the release, held 3 s, from stable on.
    Example: And all traffic through the load balancer is served by release 1.0.0 again within 30 seconds"""
    ecs_rehearsal.require_traffic().wait_recovered(version, timeout)


@then("the ECS rollback meets the runbook's targets:")
def ecs_targets(ecs_rehearsal, datatable):
    """Detect / decide / act / recover / total of the rollback under load, against a | phase | target | table.
    Example: And the ECS rollback meets the runbook's targets:"""
    ecs_rehearsal.require_traffic().timeline.check_targets(ecs_rehearsal.journal, targets_from_table(datatable))


@given("the ECS service rolls back automatically by rolling back to the previous task definition when one of "
       "these rules holds:")
def ecs_automatic(ecs_rehearsal, datatable):
    """Declared rules (| rule | threshold | for |: error rate above N %, pNN latency above K × baseline or N ms)
    on the traffic through the load balancer, watched from the deploy on; the first to hold rolls back.
    Example: Given the ECS service rolls back automatically by rolling back to the previous task definition when one of these rules holds:"""
    traffic = ecs_rehearsal.require_traffic()
    traffic.automatic = AutomaticRollback(rules_from_table(datatable),
                                          action_from_text("rolling back to the previous task definition"))
    traffic.automatic.arm(traffic)


@then(parsers.parse("the ECS automatic rollback fires within {timeout:g} seconds"))
def ecs_automatic_fires(ecs_rehearsal, timeout):
    """The rules are evaluated every 0.5 s from the deploy; the first to hold issues the update-service.
    Example: Then the ECS automatic rollback fires within 60 seconds"""
    ecs_rehearsal.require_traffic().fire_automatic(timeout)
