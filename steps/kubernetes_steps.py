"""The Kubernetes step library, in the words runbooks use: every name is a parameter.

Services are the project file's (``gameday.yaml``); Deployments are theirs (or a
blue/green track of theirs).  Durations read "90 seconds", "5 minutes", "2 min".
Each step's docstring ends with an example line; `gameday steps` shows it.
"""

from __future__ import annotations

from gameday.steps._words import step
from pytest_bdd import given, then, when

from gameday.load import ErrorRateAbove, LatencyAbove
from gameday.rehearsals import criteria
from gameday.rehearsals import kubernetes_checks as check
from gameday.rehearsals.automatic import AutomaticRollback, action_from_text, rules_from_table
from gameday.timeline import targets_from_table

# What each argument names, so `gameday run` checks it against the project before anything starts.
NAMES = {"service": "service", "deployment": "deployment", "release": "release", "blue": "release",
         "green": "release", "fault": "fault", "users": "load", "runbook": "runbook", "section": "section",
         "flag": "flag"}


# -- the environment ---------------------------------------------------------------------------------
@given(step('the service "{service}" runs release "{release}" with {replicas:d} replicas'))
def service_runs(kubernetes_rehearsal, service, release, replicas):
    """Apply the team's manifests for a release and wait for the rollout.
    Example: Given the service "checkout-api" runs release "1.4.2" with 3 replicas"""
    kubernetes_rehearsal.deploy(service, release, replicas)


@given(step('the team\'s manifests for service "{service}" are applied'))
def manifests_applied(kubernetes_rehearsal, service):
    """Apply the manifests as written (their own image and replicas) and wait for the rollout.
    Example: Given the team's manifests for service "checkout-api" are applied"""
    kubernetes_rehearsal.deploy(service, None)


@given(step('blue runs release "{blue}" and green runs release "{green}" with {replicas:d} replicas each, '
            'service "{service}" on blue'))
def blue_green(kubernetes_rehearsal, blue, green, replicas, service):
    """Two tracks of the service's Deployment side by side; its Service selects blue.
    Example: Given blue runs release "1.4.2" and green runs release "1.5.0" with 2 replicas each, service "checkout-api" on blue"""
    kubernetes_rehearsal.deploy_blue_green(service, blue, green, replicas)


@given(step('the service "{service}" runs release "{release}" with {replicas:d} replicas on a stable track behind '
            'a virtual service'))
def canary_route(kubernetes_rehearsal, service, release, replicas):
    """The stable track, a Service per track, and an Istio VirtualService giving stable 100 % of the traffic.
    Example: Given the service "checkout-api" runs release "1.4.2" with 3 replicas on a stable track behind a virtual service"""
    kubernetes_rehearsal.deploy_canary_route(service, release, replicas)


@given(step('feature flag "{flag}" of service "{service}" is on'))
def flag_on(kubernetes_rehearsal, flag, service):
    """A feature flag of the service, on (ConfigMap <service>-flags, one key per flag); a fault written
    flag=NAME applies only while it is on.
    Example: Given feature flag "new-pricing" of service "checkout-api" is on"""
    kubernetes_rehearsal.set_flag(service, flag, True)


@given(step('the service "{service}" rolls back automatically by {action} when one of these rules holds:'))
def automatic_rollback(kubernetes_rehearsal, service, action, datatable):
    """Declared rules (| rule | threshold | for |: error rate above N %, pNN latency above K × baseline or
    N ms, health checks failing above N %), watched from the bad deploy on; the first to hold takes the action (undoing the rollout,
    switching back to the blue track, draining the canary, turning feature flag "NAME" off).
    Example: Given the service "checkout-api" rolls back automatically by undoing the rollout when one of these rules holds:"""
    kubernetes_rehearsal.service(service)
    kubernetes_rehearsal.automatic = AutomaticRollback(rules_from_table(datatable), action_from_text(action))
    kubernetes_rehearsal.automatic.arm(kubernetes_rehearsal)


@given(step('the registry no longer has release "{release}"'))
def pruned(kubernetes_rehearsal, release):
    """The image of a release is pruned from the embedded cluster's registry: running pods keep it, a new
    pull fails (ErrImagePull), so a rollback to it cannot complete.
    Example: And the registry no longer has release "1.4.2\""""
    kubernetes_rehearsal.prune_image(None, release)


@given(step('release "{release}" can no longer start'))
def cannot_start(kubernetes_rehearsal, release):
    """A new container of a release exits at start from now on, as when a later release changed the
    configuration, secret or schema it reads at start: pods running it keep running, a rollback to it
    crash-loops (the embedded cluster).
    Example: And release "1.4.2" can no longer start"""
    kubernetes_rehearsal.crash_release(None, release)


@given(step("steady traffic from {users:d} users"))
def steady_traffic(kubernetes_rehearsal, users):
    """The service's own load (project file) with this many users; a clean baseline is taken first.
    Example: And steady traffic from 4 users"""
    kubernetes_rehearsal.start_load(users=users)


@given(step('steady traffic on service "{service}"'))
def steady_traffic_on(kubernetes_rehearsal, service):
    """The named service's own load as the project file describes it, then a clean baseline.
    Example: And steady traffic on service "checkout-api\""""
    kubernetes_rehearsal.start_load(service)


@given(step("a baseline of the golden signals is captured over {seconds:Duration}"))
def baseline(kubernetes_rehearsal, seconds):
    """Error rate and p50/p95/p99 of the healthy service; the run stops here if any request fails.
    Example: And a baseline of the golden signals is captured over 5 seconds"""
    kubernetes_rehearsal.capture_baseline(seconds)


@given(step('the current revision of deployment "{deployment}" is noted'))
def note_current(kubernetes_rehearsal, deployment):
    """Remember the Deployment's revision now (kubectl rollout history) as {revision}.
    Example: And the current revision of deployment "checkout-api" is noted"""
    kubernetes_rehearsal.note_revision(deployment, "current")


# -- the incident ----------------------------------------------------------------------------------------
@when(step('release "{release}" is rolled out'))
def bad_release(kubernetes_rehearsal, release):
    """The bad deploy (t0) of the service under load: its Deployment's container set to the release.
    Example: When release "1.5.0-bad" is rolled out"""
    kubernetes_rehearsal.roll_out(release)


@when(step('release "{release}" of deployment "{deployment}" is rolled out'))
def bad_release_of(kubernetes_rehearsal, release, deployment):
    """The bad deploy (t0) of a named Deployment.
    Example: When release "1.5.0-bad" of deployment "checkout-api" is rolled out"""
    kubernetes_rehearsal.roll_out(release, deployment)


@when(step('release "{release}" is rolled out one pod at a time, each watched for {seconds:Duration}'))
def bad_release_paced(kubernetes_rehearsal, release, seconds):
    """A slow rolling update (maxSurge 1, maxUnavailable 0, minReadySeconds S): it can be halted part way.
    Example: When release "1.5.0-bad" is rolled out one pod at a time, each watched for 10 seconds"""
    kubernetes_rehearsal.roll_out(release, pace=seconds)


@when(step('release "{release}" of deployment "{deployment}" is rolled out with the fault "{fault}"'))
def bad_release_with_fault(kubernetes_rehearsal, release, deployment, fault):
    """The bad deploy of a good build: the harness breaks this release's pods (error-rate=F,
    latency-ms=N, crash-on-start, never-ready), any image.
    Example: When release "1.5.0" of deployment "checkout-api" is rolled out with the fault "error-rate=0.5\""""
    kubernetes_rehearsal.roll_out(release, deployment, fault=fault)


@when(step('service "{service}" is switched to {track}'))
def switch_service(kubernetes_rehearsal, service, track):
    """The blue-green cut-over (t0): the Service's selector moves to a track.
    Example: When service "checkout-api" is switched to green"""
    kubernetes_rehearsal.switch_service(service, track)


@when(step('release "{release}" takes {percent:d}% of the traffic of service "{service}" as a canary of '
           '{replicas:Replicas}'))
def canary_release(kubernetes_rehearsal, release, percent, service, replicas):
    """The bad deploy of a canary: its Deployment comes up, then the VirtualService gives it its share (t0).
    Example: When release "1.5.0-bad" takes 20% of the traffic of service "checkout-api" as a canary of 1 replica"""
    kubernetes_rehearsal.start_canary(service, release, percent, replicas)


@then(step("the alarm for an error rate above {percent:g}% for {window:Duration} fires within {timeout:Duration}"))
def error_alarm(kubernetes_rehearsal, percent, window, timeout):
    """Detection: the alert rule holds on the service's own traffic.
    Example: Then the alarm for an error rate above 5% for 2 minutes fires within 5 minutes"""
    kubernetes_rehearsal.wait_for_alarm(ErrorRateAbove(threshold=percent / 100, for_seconds=window), timeout)


@then(step("the alarm for p{p:d} latency above {factor:g} × baseline for {window:Duration} fires within "
           "{timeout:Duration}"))
def latency_alarm(kubernetes_rehearsal, p, factor, window, timeout):
    """Detection on latency against the baseline captured before the incident.
    Example: Then the alarm for p95 latency above 2 × baseline for 5 minutes fires within 10 minutes"""
    kubernetes_rehearsal.wait_for_alarm(LatencyAbove(p=p, factor=factor, for_seconds=window), timeout)


# -- the on-call's actions ------------------------------------------------------------------------------
@then(step("the automatic rollback fires within {timeout:Duration}"))
def automatic_fires(kubernetes_rehearsal, timeout):
    """The declared rules are evaluated every 0.5 s from the bad deploy; the first to hold rolls back.
    Example: Then the automatic rollback fires within 3 minutes"""
    if kubernetes_rehearsal.automatic is None:
        from gameday.errors import ConfigError

        raise ConfigError("no automatic rollback was declared in this scenario",
                          fix="add 'Given the service \"NAME\" rolls back automatically by ... when one of these "
                              "rules holds:' with its table")
    kubernetes_rehearsal.automatic.fire_within(kubernetes_rehearsal, timeout)


@when(step('the on-call engineer runs "{command}"'))
def on_call_runs(kubernetes_rehearsal, command):
    """A kubectl line from the runbook, on the rehearsal cluster; {revision} is the noted one.
    Example: When the on-call engineer runs "kubectl rollout undo deployment/checkout-api --to-revision={revision}\""""
    kubernetes_rehearsal.run_command(command)


@when(step('the on-call engineer follows section "{section}" of runbook "{runbook}"'))
def follow_runbook(kubernetes_rehearsal, section, runbook):
    """The act phase is the team's runbook itself: that section's commands, run against the rehearsal.
    Example: When the on-call engineer follows section "Roll back" of runbook "runbooks/checkout-api.md\""""
    kubernetes_rehearsal.follow_runbook(runbook, section)


@when(step('the on-call engineer notes the previous revision in the rollout history of deployment "{deployment}"'))
def note_previous(kubernetes_rehearsal, deployment):
    """kubectl rollout history; the revision before the current one is remembered as {revision}.
    Example: When the on-call engineer notes the previous revision in the rollout history of deployment "checkout-api\""""
    kubernetes_rehearsal.note_revision(deployment, "previous")


@when(step('the on-call engineer undoes the rollout of deployment "{deployment}"'))
def undo(kubernetes_rehearsal, deployment):
    """kubectl rollout undo deployment/D.
    Example: When the on-call engineer undoes the rollout of deployment "checkout-api\""""
    kubernetes_rehearsal.undo(deployment)


@when(step('the on-call engineer undoes the rollout of deployment "{deployment}" to the noted revision'))
def undo_to_noted(kubernetes_rehearsal, deployment):
    """kubectl rollout undo deployment/D --to-revision=<the noted revision>.
    Example: When the on-call engineer undoes the rollout of deployment "checkout-api" to the noted revision"""
    kubernetes_rehearsal.undo(deployment, "noted")


@when(step('the on-call engineer undoes the rollout of deployment "{deployment}" to revision {revision:d}'))
def undo_to(kubernetes_rehearsal, deployment, revision):
    """kubectl rollout undo deployment/D --to-revision=N.
    Example: When the on-call engineer undoes the rollout of deployment "checkout-api" to revision 2"""
    kubernetes_rehearsal.undo(deployment, revision)


@when(step('the on-call engineer pauses the rollout of deployment "{deployment}"'))
def pause(kubernetes_rehearsal, deployment):
    """kubectl rollout pause: halt a rolling update where it stands.
    Example: When the on-call engineer pauses the rollout of deployment "checkout-api\""""
    kubernetes_rehearsal.kubectl_action(deployment, "rollout", "pause", "deployment/{deployment}")


@when(step('the on-call engineer resumes the rollout of deployment "{deployment}"'))
def resume(kubernetes_rehearsal, deployment):
    """kubectl rollout resume.
    Example: When the on-call engineer resumes the rollout of deployment "checkout-api\""""
    kubernetes_rehearsal.kubectl_action(deployment, "rollout", "resume", "deployment/{deployment}")


@when(step('the on-call engineer scales deployment "{deployment}" to {replicas:d} replicas'))
def scale(kubernetes_rehearsal, deployment, replicas):
    """kubectl scale deployment/D --replicas=N.
    Example: When the on-call engineer scales deployment "checkout-api-green" to 0 replicas"""
    kubernetes_rehearsal.kubectl_action(deployment, "scale", "deployment/{deployment}", f"--replicas={replicas}")


@when(step('the on-call engineer sets the image of deployment "{deployment}" to release "{release}"'))
def set_image(kubernetes_rehearsal, deployment, release):
    """kubectl set image deployment/D container=repository:release.
    Example: When the on-call engineer sets the image of deployment "checkout-api" to release "1.4.2\""""
    kubernetes_rehearsal.set_image(deployment, release)


@when(step('the on-call engineer switches service "{service}" back to the {track} track'))
def switch_back(kubernetes_rehearsal, service, track):
    """kubectl patch service: the selector back on a track.
    Example: When the on-call engineer switches service "checkout-api" back to the blue track"""
    kubernetes_rehearsal.switch_back(service, track)


@when(step('the on-call engineer sets the canary weight of service "{service}" to {percent:d}%'))
def canary_weight(kubernetes_rehearsal, service, percent):
    """kubectl patch virtualservice: the canary gets N % of the traffic, the stable track the rest.
    Example: When the on-call engineer sets the canary weight of service "checkout-api" to 0%"""
    kubernetes_rehearsal.set_canary_weight(service, percent)


@when(step('the on-call engineer deletes the canary deployment of service "{service}"'))
def delete_canary(kubernetes_rehearsal, service):
    """kubectl delete deployment <deployment>-canary.
    Example: When the on-call engineer deletes the canary deployment of service "checkout-api\""""
    kubernetes_rehearsal.delete_canary(service)


@when(step('the on-call engineer turns feature flag "{flag}" of service "{service}" off'))
def kill_switch(kubernetes_rehearsal, flag, service):
    """The kill switch: kubectl patch configmap <service>-flags, the flag off; no redeploy.
    Example: When the on-call engineer turns feature flag "new-pricing" of service "checkout-api" off"""
    kubernetes_rehearsal.kill_switch(service, flag)


# -- the checks ---------------------------------------------------------------------------------------------
@then(step('the rollout of deployment "{deployment}" completes within {timeout:Duration}'))
def rollout_completes(kubernetes_rehearsal, deployment, timeout):
    """kubectl rollout status --timeout; after the on-call acted, this ends the "act" phase.
    Example: Then the rollout of deployment "checkout-api" completes within 120 seconds"""
    kubernetes_rehearsal.rollout_completes(deployment, timeout)


@then(step('the rollback of deployment "{deployment}" is seen to fail within {timeout:Duration}'))
def rollback_fails(kubernetes_rehearsal, deployment, timeout):
    """The rollback cannot complete (a pod stuck in ErrImagePull, ImagePullBackOff or CrashLoopBackOff, or
    the progress deadline passed): how long until that was seen is measured; the escalation follows.
    Example: Then the rollback of deployment "checkout-api" is seen to fail within 60 seconds"""
    check.wait_rollback_stuck(kubernetes_rehearsal, deployment, timeout)


@then(step('deployment "{deployment}" runs release "{release}"'))
def deployment_runs(kubernetes_rehearsal, deployment, release):
    """The image of the Deployment's container is repository:release.
    Example: Then deployment "checkout-api" runs release "1.4.2\""""
    check.require_image(kubernetes_rehearsal, deployment, release)


@then(step('deployment "{deployment}" is back at the noted revision'))
def back_at_noted(kubernetes_rehearsal, deployment):
    """The current ReplicaSet is the noted revision's pod template (undo gives it a new number).
    Example: Then deployment "checkout-api" is back at the noted revision"""
    check.require_noted_revision(kubernetes_rehearsal, deployment)


@then(step('all replicas of deployment "{deployment}" are ready'))
def replicas_ready(kubernetes_rehearsal, deployment):
    """Ready and updated replicas equal the desired count.
    Example: Then all replicas of deployment "checkout-api" are ready"""
    check.require_ready(kubernetes_rehearsal, deployment)


@then(step('deployment "{deployment}" has {replicas:Replicas} ready'))
def has_replicas(kubernetes_rehearsal, deployment, replicas):
    """Desired and ready replicas are exactly N (a manual scale, as the runbook says).
    Example: Then deployment "checkout-api-green" has 0 replicas ready"""
    check.require_replicas(kubernetes_rehearsal, deployment, replicas)


@then(step('the pods of deployment "{deployment}" are Running with at most {restarts:d} restarts'))
def pods_running(kubernetes_rehearsal, deployment, restarts):
    """Every pod of the current ReplicaSet is Running and restarted at most N times.
    Example: Then the pods of deployment "checkout-api" are Running with at most 0 restarts"""
    check.require_pods_running(kubernetes_rehearsal, deployment, restarts)


@then(step('the rollout of deployment "{deployment}" is halted part way'))
def halted(kubernetes_rehearsal, deployment):
    """Paused, with some but not all pods on the new release (how many is measured).
    Example: Then the rollout of deployment "checkout-api" is halted part way"""
    check.require_halted(kubernetes_rehearsal, deployment)


@then(step('no pod of deployment "{deployment}" runs release "{release}"'))
def no_pod_of(kubernetes_rehearsal, deployment, release):
    """No pod of any ReplicaSet of the Deployment runs the release (terminating ones count; 30 s to go).
    Example: Then no pod of deployment "checkout-api" runs release "1.5.0-bad\""""
    check.require_no_pod_of(kubernetes_rehearsal, deployment, release)


@then(step('the {endpoint:w} endpoint of service "{service}" answers {status:d}'))
def endpoint_answers(kubernetes_rehearsal, endpoint, service, status):
    """GET the health, ready or version endpoint the project file names, through the Service.
    Example: Then the health endpoint of service "checkout-api" answers 200"""
    check.require_endpoint(kubernetes_rehearsal, service, endpoint, status)


@then(step('the version endpoint of service "{service}" names release "{release}"'))
def version_names(kubernetes_rehearsal, service, release):
    """GET the version endpoint: the release it names (header or JSON field, as the project file says).
    Example: Then the version endpoint of service "checkout-api" names release "1.4.2"
    """
    check.require_version_names(kubernetes_rehearsal, service, release)


@then(step('service "{service}" selects the {track} track'))
def service_selects(kubernetes_rehearsal, service, track):
    """The Service's selector is on a track.
    Example: Then service "checkout-api" selects the blue track"""
    check.require_selector(kubernetes_rehearsal, service, track)


@then(step('the canary of service "{service}" is drained'))
def canary_drained(kubernetes_rehearsal, service):
    """The VirtualService gives the canary 0 % and the stable track 100 %; the canary Deployment is gone.
    Example: Then the canary of service "checkout-api" is drained"""
    check.require_canary_drained(kubernetes_rehearsal, service)


@then(step('all traffic is served by release "{release}" again within {timeout:Duration}'))
def traffic_recovered(kubernetes_rehearsal, release, timeout):
    """Recovery: errors at most 1 % and every request served by the release, held 3 s.
    Example: Then all traffic is served by release "1.4.2" again within 60 seconds"""
    check.wait_recovered(kubernetes_rehearsal, release, timeout)


@then(step("the error rate is back below {percent:g}% within {timeout:Duration}"))
def errors_recovered(kubernetes_rehearsal, percent, timeout):
    """Recovery without a revert (a kill switch): errors at most X %, held 3 s, whichever release serves.
    Example: Then the error rate is back below 1% within 30 seconds"""
    check.wait_errors_recovered(kubernetes_rehearsal, percent, timeout)


@then(step("the error rate stays above {percent:g}% for {seconds:Duration}"))
def errors_persist(kubernetes_rehearsal, percent, seconds):
    """The on-call's last action did not help: errors above X % for S seconds after it (the runbook's next branch).
    Example: Then the error rate stays above 5% for 10 seconds"""
    check.errors_persist(kubernetes_rehearsal, percent, seconds)


@then(step('deployment "{deployment}" was not redeployed'))
def not_redeployed(kubernetes_rehearsal, deployment):
    """Same generation, revision and ReplicaSet as when the kill switch was thrown.
    Example: Then deployment "checkout-api" was not redeployed"""
    check.require_not_redeployed(kubernetes_rehearsal, deployment)


@then(step('the last {count:d} requests were served by release "{release}"'))
def served_by(kubernetes_rehearsal, count, release):
    """The release each of the last N responses named.
    Example: And the last 50 requests were served by release "1.4.2\""""
    check.require_served_by(kubernetes_rehearsal, release, last=count)


@then(step('release "{release}" serves at least {percent:g}% of traffic'))
def serves_share(kubernetes_rehearsal, release, percent):
    """The release's share of the last 10 s of responses.
    Example: Then release "1.4.2" serves at least 95% of traffic"""
    check.share_at_least(kubernetes_rehearsal, release, percent)


@then(step("p{p:d} latency stays below {ms:g} ms for {seconds:Duration}"))
def latency_below(kubernetes_rehearsal, p, ms, seconds):
    """pN latency under a bound, held.
    Example: Then p99 latency stays below 250 ms for 10 seconds"""
    check.latency_within(kubernetes_rehearsal, p, below_ms=ms, hold=seconds, timeout=seconds + 10)


@then(step("p{p:d} latency is within {factor:g} × baseline within {timeout:Duration}"))
def latency_within_factor(kubernetes_rehearsal, p, factor, timeout):
    """pN latency at most k × the baseline's pN (held 3 s), reached within T.
    Example: Then p95 latency is within 2 × baseline within 1 minute"""
    check.latency_within(kubernetes_rehearsal, p, factor=factor, hold=3, timeout=timeout)


@then(step("p{p:d} latency is back to baseline within {timeout:Duration}"))
def latency_back(kubernetes_rehearsal, p, timeout):
    """pN latency back within 1.5 × the baseline's pN (at least 20 ms: loopback noise), held 3 s.
    Example: Then p99 latency is back to baseline within 5 minutes"""
    check.latency_within(kubernetes_rehearsal, p, factor=1.5, hold=3, timeout=timeout)


@then(step("the error rate stays below {percent:g}% for {seconds:Duration}"))
def error_rate_below(kubernetes_rehearsal, percent, seconds):
    """Error rate strictly under X % over the next S seconds (10 s allowed to settle).
    Example: Then the error rate stays below 0.1% for 30 seconds"""
    check.error_rate_stays_below(kubernetes_rehearsal, percent, seconds)


@then(step("the runbook's success criteria hold for {seconds:Duration}:"))
def success_criteria(kubernetes_rehearsal, seconds, datatable):
    """A | criterion | bound | table (error rate | < 1 %, p99 latency | < 2000 ms, replicas | match,
    restarts | 0): the traffic criteria held together for S seconds, then the cluster's; each measured.
    Example: And the runbook's success criteria hold for 30 seconds:"""
    criteria.hold(kubernetes_rehearsal, criteria.criteria_from_table(datatable), seconds)


@then("time to rollback meets the runbook's targets:")
def meets_targets(kubernetes_rehearsal, datatable):
    """Detect / decide / act / recover / total against the runbook's targets (a | phase | target | table).
    Example: Then time to rollback meets the runbook's targets:"""
    kubernetes_rehearsal.timeline.check_targets(kubernetes_rehearsal.journal, targets_from_table(datatable))
