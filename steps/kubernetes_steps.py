"""Steps for Kubernetes rollback rehearsals under load."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from gameday.load import ErrorRateAbove
from gameday.timeline import targets_from_table


@given(parsers.parse('the demo service runs release "{version}" with {replicas:d} replicas on the rehearsal cluster'))
def demo_service_running(kubernetes_rehearsal, version, replicas):
    kubernetes_rehearsal.deploy(version, replicas)


@given(parsers.parse("steady traffic from {users:d} users"))
def steady_traffic(kubernetes_rehearsal, users):
    kubernetes_rehearsal.start_load(users)


@when(parsers.parse('release "{version}" is rolled out'))
def bad_release(kubernetes_rehearsal, version):
    kubernetes_rehearsal.ship_bad_release(version)


@then(parsers.parse("the alarm for an error rate above {percent:g}% for {seconds:g} seconds fires within {timeout:g} seconds"))
def error_alarm(kubernetes_rehearsal, percent, seconds, timeout):
    kubernetes_rehearsal.wait_for_alarm(ErrorRateAbove(threshold=percent / 100, for_seconds=seconds), timeout)


@when(parsers.parse('the on-call engineer runs "{command}"'))
def on_call_runs(kubernetes_rehearsal, command):
    kubernetes_rehearsal.run_rollback(command)


@then(parsers.parse('all traffic is served by release "{version}" again within {timeout:g} seconds'))
def traffic_recovered(kubernetes_rehearsal, version, timeout):
    kubernetes_rehearsal.wait_recovered(version, timeout)


@then(parsers.parse('deployment "{deployment}" runs release "{version}"'))
def deployment_runs(kubernetes_rehearsal, deployment, version):
    kubernetes_rehearsal.require_image(deployment, version)


@then(parsers.parse('the last {count:d} requests were served by release "{version}"'))
def served_by(kubernetes_rehearsal, count, version):
    kubernetes_rehearsal.require_served_by(version, last=count)


@then("time to rollback meets the runbook's targets:")
def meets_targets(kubernetes_rehearsal, datatable):
    kubernetes_rehearsal.timeline.check_targets(kubernetes_rehearsal.journal, targets_from_table(datatable))


@given(parsers.parse('blue runs release "{blue}" and green runs release "{green}" with {replicas:d} replicas each, '
                     'service "demo" on blue'))
def blue_green(kubernetes_rehearsal, blue, green, replicas):
    kubernetes_rehearsal.deploy_blue_green(blue, green, replicas)


@when(parsers.parse('service "demo" is switched to {track}'))
def switch_service(kubernetes_rehearsal, track):
    kubernetes_rehearsal.switch_service(track)


@then(parsers.parse('service "demo" selects the {track} track'))
def service_selects(kubernetes_rehearsal, track):
    kubernetes_rehearsal.require_selector(track)
