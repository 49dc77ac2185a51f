"""Steps for AWS rehearsals: ECS rollback (staging checklist) and RDS snapshot restore."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from gameday.database.seed import seed_orders

# -- ECS --------------------------------------------------------------------------------


@given(parsers.parse('an ECS service "{name}" running release {version} with {tasks:d} tasks'))
def ecs_service_running(ecs_rehearsal, name, version, tasks):
    ecs_rehearsal.start(version, tasks, name=name)


@when(parsers.parse("release {version} is deployed to the service"))
def release_deployed(ecs_rehearsal, version):
    ecs_rehearsal.deploy(version)


@then("the new deployment fails its health checks")
def deployment_fails(ecs_rehearsal):
    ecs_rehearsal.expect_deploy_failing()


@then(parsers.parse("the service does not become stable within {seconds:g} seconds"))
def not_stable(ecs_rehearsal, seconds):
    ecs_rehearsal.require_not_stable_for(seconds)


@given("the pipeline left a rollback state file pointing at the previous task definition")
@when("the pipeline left a rollback state file pointing at the previous task definition")
def rollback_state_left(ecs_rehearsal):
    ecs_rehearsal.leave_rollback_state()


@given(parsers.parse("the pipeline left a rollback state file without {field_name}"))
@when(parsers.parse("the pipeline left a rollback state file without {field_name}"))
def rollback_state_incomplete(ecs_rehearsal, field_name):
    ecs_rehearsal.leave_rollback_state()
    ecs_rehearsal.break_rollback_state(field_name)


@when("the on-call engineer rolls back to PREV_TASK from the rollback state file")
def roll_back(ecs_rehearsal):
    ecs_rehearsal.roll_back()


@then(parsers.parse("the service is stable again within {seconds:g} seconds"))
def stable_again(ecs_rehearsal, seconds):
    ecs_rehearsal.require_stable_within(seconds)


@then("the service and its only deployment run the previous task definition")
def service_on_previous(ecs_rehearsal):
    ecs_rehearsal.verify_service()


@then(parsers.parse("every task serves release {version}"))
def tasks_serve(ecs_rehearsal, version):
    ecs_rehearsal.verify_traffic(version)


@then(parsers.parse("the rollback is refused, naming {field_name}"))
def rollback_refused(ecs_rehearsal, field_name):
    ecs_rehearsal.require_rollback_refused(naming=field_name)


@then(parsers.parse("the service still runs release {version}"))
def still_runs(ecs_rehearsal, version):
    ecs_rehearsal.require_running(version)


# -- RDS ---------------------------------------------------------------------------------


@given(parsers.parse('an RDS instance "{name}" holding the orders database with {count:d} orders'))
def rds_instance(rds_rehearsal, database, name, count):
    rds_rehearsal.create_instance(name)
    seed_orders(database.dsn, count)


@given(parsers.parse('a manual DB snapshot of the instance tagged with release "{release}"'))
def manual_snapshot(rds_rehearsal, release):
    rds_rehearsal.snapshot(release)


@given("the DB snapshot is deleted before anyone restores it")
def snapshot_deleted(rds_rehearsal):
    rds_rehearsal.delete_snapshot()


@when(parsers.parse('the DB snapshot is restored to the scratch instance "{scratch}"'))
def restore_to_scratch(rds_rehearsal, scratch):
    rds_rehearsal.restore(scratch)


@then(parsers.parse("the scratch instance is available within {seconds:g} seconds"))
def scratch_available(rds_rehearsal, seconds):
    rds_rehearsal.require_scratch_available(seconds)


@then(parsers.parse('the DB snapshot is tagged with release "{release}"'))
def snapshot_tagged(rds_rehearsal, release):
    rds_rehearsal.require_snapshot_tagged(release)


@then("every table of the restored data matches the snapshot")
def restored_data_matches(rds_rehearsal):
    rds_rehearsal.require_data_matches()


@then("the restore is refused, naming the missing DB snapshot")
def restore_refused(rds_rehearsal):
    rds_rehearsal.require_restore_refused(naming=rds_rehearsal.snapshot_id or "snapshot")
