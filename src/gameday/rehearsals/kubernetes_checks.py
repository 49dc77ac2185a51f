"""The proofs of a Kubernetes rehearsal: each check reads the cluster or the traffic itself.

The cluster side: the image and revision a Deployment runs, its ready replicas, its
pods' phase and restarts, the Service's selector, an endpoint's status code.  The
traffic side (the team's own load): which release served the last requests, recovery
to the stable release, latency against a bound or the baseline, error rate held low.

    from gameday.rehearsals import kubernetes_checks as check
    check.require_image(rehearsal, "checkout-api", "1.0.0")
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from gameday.cluster.proxy_routes import route_weights, virtual_service_routes
from gameday.errors import RehearsalFailed
from gameday.load import (
    EndpointRecords,
    ErrorRateAbove,
    ErrorRateAtMost,
    ErrorRateBelow,
    LatencyAtMost,
    LatencyBelow,
)
from gameday.load.signals import error_rate, latency, version_share
from gameday.load.triggers import Trigger, TriggerTimeout
from gameday.rehearsals import traffic
from gameday.rehearsals.kubernetes import CANARY, STABLE, KubernetesRehearsal, baseline_ms

# How long the signals must stay healthy before the service counts as recovered.
SHARE_WINDOW_S = 10.0
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def _deployment(r: KubernetesRehearsal, deployment: str | None) -> tuple[Any, str, dict[str, Any]]:
    service, name = r.owner(deployment)
    raw = r.kubectl(service).run("get", f"deployment/{name}", "-o", "json").stdout
    return service, name, json.loads(raw)


def require_image(r: KubernetesRehearsal, deployment: str | None, release: str) -> None:
    r.ensure_done()
    service, name, obj = _deployment(r, deployment)
    manifests = r.manifests(service)
    containers = obj["spec"]["template"]["spec"]["containers"]
    image = next((c.get("image") for c in containers if c.get("name") == manifests.container), None)
    revision = (obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
    r._event("verify", f"deployment/{name} runs {image} (revision {revision})", image=image, revision=revision)
    if image != manifests.image(release):
        raise RehearsalFailed(f"deployment/{name} runs {image}, expected {manifests.image(release)}")


def require_noted_revision(r: KubernetesRehearsal, deployment: str | None) -> None:
    """The Deployment runs the pod template of the revision a step noted (undo renumbers it)."""
    r.ensure_done()
    service, name, obj = _deployment(r, deployment)
    wanted = r.remembered.get("revision_template")
    if not wanted:
        raise RehearsalFailed("no revision was noted", fix="note it with a step before the rollback")
    current = (obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
    running = next((rs["metadata"].get("labels", {}).get("pod-template-hash")
                    for rs in r._replicasets(service, name)
                    if (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == current), None)
    r._event("verify", f"deployment/{name} revision {current} runs pod template {running} "
             f"(noted revision {r.remembered['revision']}: {wanted})", revision=current, template=running)
    if running != wanted:
        raise RehearsalFailed(f"deployment/{name} runs pod template {running} (revision {current}), not the one of "
                              f"the noted revision {r.remembered['revision']} ({wanted})")


def require_ready(r: KubernetesRehearsal, deployment: str | None) -> None:
    r.ensure_done()
    _, name, obj = _deployment(r, deployment)
    desired = int(obj["spec"].get("replicas", 1))
    status = obj.get("status") or {}
    ready, updated = int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas") or 0)
    r._event("verify", f"deployment/{name}: {ready} of {desired} replicas ready, {updated} updated",
             desired=desired, ready=ready, updated=updated)
    if ready != desired or updated != desired:
        raise RehearsalFailed(f"deployment/{name} has {ready} ready and {updated} updated of {desired} replicas")


def require_replicas(r: KubernetesRehearsal, deployment: str | None, replicas: int) -> None:
    """The Deployment asks for ``replicas`` and has that many ready (a manual scale as the runbook says)."""
    r.ensure_done()
    _, name, obj = _deployment(r, deployment)
    desired = int(obj["spec"].get("replicas", 1))
    ready = int((obj.get("status") or {}).get("readyReplicas") or 0)
    r._event("verify", f"deployment/{name}: {ready} ready of {desired} desired replicas", desired=desired, ready=ready)
    if desired != replicas or ready != replicas:
        raise RehearsalFailed(f"deployment/{name} has {ready} ready of {desired} desired replicas, expected {replicas}")


def current_pods(r: KubernetesRehearsal, deployment: str | None) -> tuple[str, int, list[dict[str, Any]]]:
    """The pods of the Deployment's current ReplicaSet that are not being deleted."""
    service, name, obj = _deployment(r, deployment)
    revision = (obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
    current = next((rs["metadata"]["name"] for rs in r._replicasets(service, name)
                    if (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == revision), None)
    pods = json.loads(r.kubectl(service).run("get", "pods", "-o", "json").stdout).get("items", [])
    mine = [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and any(o.get("name") == current for o in p["metadata"].get("ownerReferences") or [])]
    return name, int(obj["spec"].get("replicas", 1)), mine


def require_pods_running(r: KubernetesRehearsal, deployment: str | None, max_restarts: int) -> None:
    r.ensure_done()
    name, desired, pods = current_pods(r, deployment)
    seen = {}
    for pod in pods:
        restarts = sum(int(c.get("restartCount", 0)) for c in pod.get("status", {}).get("containerStatuses") or [])
        seen[pod["metadata"]["name"]] = (pod.get("status", {}).get("phase"), restarts)
    r._event("verify", f"deployment/{name} pods: " + ", ".join(f"{p} {ph} ({n} restarts)" for p, (ph, n) in seen.items()),
             pods={p: {"phase": ph, "restarts": n} for p, (ph, n) in seen.items()})
    if len(seen) != desired:
        raise RehearsalFailed(f"deployment/{name} has {len(seen)} current pods, expected {desired}")
    bad = [f"{p} is {ph}" for p, (ph, _) in seen.items() if ph != "Running"]
    bad += [f"{p} restarted {n} times" for p, (_, n) in seen.items() if n > max_restarts]
    if bad:
        raise RehearsalFailed(f"deployment/{name}: {'; '.join(bad)} (at most {max_restarts} restarts allowed)")


def require_halted(r: KubernetesRehearsal, deployment: str | None) -> None:
    """The rolling update is paused with some, not all, of the pods on the new release."""
    _, name, obj = _deployment(r, deployment)
    desired = int(obj["spec"].get("replicas", 1))
    updated = int((obj.get("status") or {}).get("updatedReplicas") or 0)
    paused = bool(obj["spec"].get("paused"))
    r._event("verify", f"deployment/{name}: {'paused' if paused else 'not paused'} with {updated} of {desired} "
             "pods updated", paused=paused, updated=updated, desired=desired)
    if r.journal is not None:
        r.journal.measure(f"pods of deployment/{name} updated when halted", updated, "pods", target=desired - 1)
    if not paused:
        raise RehearsalFailed(f"deployment/{name} is not paused: its rolling update was not halted")
    if updated >= desired:
        raise RehearsalFailed(f"deployment/{name} was halted only after all {desired} pods were updated: "
                              "the halt came too late to limit the bad release")


def require_no_pod_of(r: KubernetesRehearsal, deployment: str | None, release: str, timeout: float = 30) -> None:
    """No pod of any of the Deployment's ReplicaSets runs ``release`` (those still terminating count)."""
    import time

    r.ensure_done()
    service, name = r.owner(deployment)
    image = r.manifests(service).image(release)
    deadline = time.monotonic() + timeout
    while True:
        owners = {rs["metadata"]["name"] for rs in r._replicasets(service, name)}
        pods = json.loads(r.kubectl(service).run("get", "pods", "-o", "json").stdout).get("items", [])
        left = sorted(p["metadata"]["name"] for p in pods
                      if any(o.get("name") in owners for o in p["metadata"].get("ownerReferences") or [])
                      and any(c.get("image") == image for c in p["spec"].get("containers") or []))
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    r._event("verify", f"deployment/{name}: {len(left)} pods of {release} left" + (f" ({', '.join(left)})" if left else ""),
             left=left)
    if left:
        raise RehearsalFailed(f"deployment/{name} still has {len(left)} pods of release {release} after "
                              f"{timeout:g}s: {', '.join(left)}")


STUCK = ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "CreateContainerConfigError")
STUCK_POLL_S = 0.5


def wait_rollback_stuck(r: KubernetesRehearsal, deployment: str | None, timeout: float) -> float:
    """The rollback the on-call started cannot complete: a pod of the Deployment's current ReplicaSet is
    stuck (ErrImagePull, ImagePullBackOff, CrashLoopBackOff) or the rollout passed its progress deadline.
    Marks "stuck" when gameday saw it (pod status polled every 0.5 s)."""
    import time

    if "acted" not in r.timeline.marks:
        raise RehearsalFailed("no rollback was started, so none can be seen to fail",
                              fix="put this after the on-call's rollback step")
    service, name = r.owner(deployment)
    deadline = time.monotonic() + timeout
    while True:
        _, _, obj = _deployment(r, name)
        _, desired, pods = current_pods(r, name)
        stuck = sorted({f"{p['metadata']['name']}: {s['state']['waiting'].get('reason')}"
                        for p in pods for s in (p.get("status") or {}).get("containerStatuses") or []
                        if ((s.get("state") or {}).get("waiting") or {}).get("reason") in STUCK})
        conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
        deadline_passed = (conditions.get("Progressing") or {}).get("reason") == "ProgressDeadlineExceeded"
        status = obj.get("status") or {}
        complete = (int(status.get("updatedReplicas") or 0) == desired == int(status.get("availableReplicas") or 0)
                    and int(status.get("replicas") or 0) == desired)
        if stuck or deadline_passed:
            at = time.time()
            r.timeline.mark("stuck", at)
            why = "; ".join(stuck) or "the rollout passed its progress deadline"
            r._event("rollback-stuck", f"deployment/{name}: the rollback cannot complete ({why})", pods=stuck)
            if r.journal is not None:
                r.journal.measure("time to see the rollback fail", at - r.timeline.marks["acted"], "s",
                                  target=timeout, detail=f"from the rollback to {why} (pod status polled every "
                                                         f"{STUCK_POLL_S:g} s)")
            return at - r.timeline.marks["acted"]
        if complete:
            raise RehearsalFailed(f"deployment/{name} completed its rollback: it did not fail, so there is nothing "
                                  "to escalate")
        if time.monotonic() >= deadline:
            raise RehearsalFailed(f"deployment/{name} neither completed its rollback nor showed why it could not "
                                  f"within {timeout:g}s")
        time.sleep(STUCK_POLL_S)


def _get_endpoint(r: KubernetesRehearsal, name: str | None, endpoint: str) -> tuple[Any, str, int, Any, bytes]:
    """GET the service's health/ready/version endpoint (from the project file) through its address."""
    service = r.service(name)
    path = service.need(f"its {endpoint} endpoint", getattr(service.endpoints, endpoint, None),
                        f"endpoints: {{{endpoint}: /PATH}}")
    url = r.service_url(service) + path
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a loopback URL we built
            return service, path, response.status, response.headers, response.read(65536)
    except urllib.error.HTTPError as exc:
        return service, path, exc.code, exc.headers, exc.read(65536)
    except OSError as exc:
        raise RehearsalFailed(f"{endpoint} endpoint {url} did not answer: {exc}") from None


def require_endpoint(r: KubernetesRehearsal, name: str | None, endpoint: str, status: int) -> None:
    service, path, got, _, _ = _get_endpoint(r, name, endpoint)
    r._event("verify", f"GET {path} on service {service.service_name} answered {got}", path=path, status=got)
    if got != status:
        raise RehearsalFailed(f"{endpoint} endpoint {path} of service {service.service_name} answered {got}, "
                              f"expected {status}")


def require_version_names(r: KubernetesRehearsal, name: str | None, release: str) -> None:
    """``curl /version | jq -r .version``: the version endpoint names the release (read as the project says)."""
    service, path, got, headers, body = _get_endpoint(r, name, "version")
    reader = service.need("how a response names its release", service.release, "release: {header: ...}")
    named = reader.read(headers, body)
    r._event("verify", f"GET {path} on service {service.service_name}: {got}, release {named}", status=got,
             release=named)
    if named != release:
        raise RehearsalFailed(f"the version endpoint {path} of service {service.service_name} names release "
                              f"{named or '(none: ' + reader.describe() + ' not in the response)'}, expected {release}")


def require_selector(r: KubernetesRehearsal, name: str | None, track: str) -> None:
    service = r.service(name)
    selected = r.kubectl(service).jsonpath(f"service/{service.service_name}", "{.spec.selector.track}")
    if selected != track:
        raise RehearsalFailed(f"service/{service.service_name} selects track {selected or '(none)'}, expected {track}")


def require_canary_drained(r: KubernetesRehearsal, name: str | None) -> None:
    """The VirtualService gives the canary 0 and the stable track all the traffic; the canary Deployment is gone."""
    r.ensure_done()
    service = r.service(name)
    manifests = r.manifests(service)
    raw = r.kubectl(service).run("get", f"virtualservice/{service.service_name}", "-o", "json").stdout
    _, routes = virtual_service_routes(json.loads(raw))
    by_host: dict[str, int] = {}
    for (host, _, _), weight in zip(routes, route_weights(routes), strict=True):
        name = host.split("/", 1)[1]
        by_host[name] = by_host.get(name, 0) + weight
    total = sum(by_host.values())
    stable = manifests.track_service_name(STABLE)
    share = 100 * by_host.get(stable, 0) / total if total else 0.0
    canary = manifests.deployment_name(CANARY)
    left = r.exists(service, f"deployment/{canary}")
    split = ", ".join(f"{host} {weight}" for host, weight in by_host.items()) or "no routes"
    r._event("verify", f"virtualservice/{service.service_name} weights: {split}; deployment/{canary} "
             + ("still exists" if left else "is gone"), weights=by_host, canary_deployment=left)
    if r.journal is not None:
        r.journal.measure(f"traffic weight on {stable}", share, "%", target=100, bound="min")
    if share < 100:
        raise RehearsalFailed(f"virtualservice/{service.service_name} still sends {100 - share:.0f}% of the traffic "
                              f"elsewhere than {stable} (weights: {split})")
    if left:
        raise RehearsalFailed(f"deployment/{canary} still exists after the canary was drained",
                              fix="delete it as the runbook says")


# -- the traffic ----------------------------------------------------------------------------------
def require_served_by(r: KubernetesRehearsal, release: str, last: int = 50) -> None:
    r.service().need("how a response names its release", r.service().release, "release: {header: ...}")
    records = r.require_load().records()[-last:]
    if len(records) < last:
        raise RehearsalFailed(f"only {len(records)} requests were made; {last} needed to prove who serves traffic")
    others = sorted({rec.version for rec in records if rec.version != release})
    if r.journal is not None:
        share = sum(rec.version == release for rec in records) / len(records)
        r.journal.measure(f"last {last} requests served by {release}", share * 100, "%", target=100, bound="min")
    if others:
        raise RehearsalFailed(f"of the last {last} requests some were served by {', '.join(others)}, not {release}")


def wait_recovered(r: KubernetesRehearsal, release: str, timeout: float) -> float:
    """Error rate at most 1 % and 100 % of traffic on ``release``, held for a few seconds."""
    r.service().need("how a response names its release", r.service().release, "release: {header: ...}")
    r.ensure_done()
    recovered = traffic.wait_recovered(r.require_load(), release, timeout, done=r.timeline.marks.get("done"),
                                       scale=r.timeline.scale, journal=r.journal)
    r.recovery = f"errors back down and every request served by {release}"
    r.timeline.mark("recovered", recovered)
    if "stuck" in r.timeline.marks and r.journal is not None:  # the escalation after a rollback that failed
        r.journal.measure("time to recover after the rollback failed (escalation)",
                          recovered - r.timeline.marks["stuck"], "s", detail="from the failed rollback being seen "
                          "to every request on " + release)
    return recovered - r.timeline.marks.get("done", recovered)


def wait_errors_recovered(r: KubernetesRehearsal, percent: float, timeout: float) -> float:
    """Errors at most ``percent`` %, held a few seconds, whichever release serves (a kill switch, not a revert)."""
    r.ensure_done()
    load = r.require_load()
    hold = traffic.RECOVERY_HOLD_S / r.timeline.scale
    rule = ErrorRateAtMost(threshold=percent / 100, for_seconds=hold, window_seconds=2)
    done = r.timeline.marks.get("done")
    try:
        confirmed = rule.wait(load, timeout, since=done, journal=r.journal)
    except TriggerTimeout as exc:
        raise RehearsalFailed(f"the errors did not stop: {exc.message}") from None
    recovered = max(rule.moment(load.records(since=None if done is None else done - 1), done, confirmed),
                    done if done is not None else -1.0)
    serving = ", ".join(sorted(version_share(load.records(since=confirmed - 2)))) or "the service"
    r.recovery = f"errors back down to at most {percent:g} %, {serving} still serving (no revert)"
    return r.timeline.mark("recovered", recovered) - r.timeline.marks.get("done", recovered)


def errors_persist(r: KubernetesRehearsal, percent: float, seconds: float) -> None:
    """After the on-call's last action the error rate stays above ``percent`` % for ``seconds`` s: it did not help."""
    hold = seconds / r.timeline.scale
    rule = ErrorRateAbove(threshold=percent / 100, for_seconds=hold)
    since = r.timeline.marks.get("acted")
    try:
        rule.wait(r.require_load(), hold + 10, since=since, journal=r.journal)
    except TriggerTimeout as exc:
        raise RehearsalFailed(f"the errors stopped after the on-call's action, so it did help: {exc.message}") \
            from None


def require_not_redeployed(r: KubernetesRehearsal, deployment: str | None) -> None:
    """The Deployment has the generation, revision and ReplicaSet it had when the kill switch was thrown."""
    service, name = r.owner(deployment)
    before = json.loads(r.remembered.get("rollout_state") or "{}").get(name)
    if not before:
        raise RehearsalFailed("no kill switch was thrown in this scenario, so there is nothing to compare with",
                              fix="turn a feature flag off first ('the on-call engineer turns feature flag ...')")
    now = r._rollout_state(service, name)
    r._event("verify", f"deployment/{name}: generation {now['generation']}, revision {now['revision']}, "
             f"replicaset {now['replicaset']} (at the kill switch: {before['generation']}, {before['revision']}, "
             f"{before['replicaset']})", before=before, now=now)
    changed = [f"{key} {before[key]} -> {now[key]}" for key in ("generation", "revision", "replicaset")
               if before.get(key) != now.get(key)]
    if changed:
        raise RehearsalFailed(f"deployment/{name} was redeployed after the kill switch: {', '.join(changed)}")


def _hold(r: KubernetesRehearsal, rule: Trigger, timeout: float, what: str) -> float:
    try:
        return rule.wait(r.require_load(), timeout, since=r.timeline.marks.get("done"), journal=r.journal)
    except TriggerTimeout as exc:
        raise RehearsalFailed(f"{what}: {exc.message}") from None


def latency_within(r: KubernetesRehearsal, p: float, *, below_ms: float | None = None, factor: float | None = None,
                   hold: float, timeout: float) -> None:
    """pN at most ``below_ms``, or at most ``factor`` × the baseline's pN, held ``hold`` s within ``timeout``."""
    r.ensure_done()
    if below_ms is not None:
        rule: LatencyAtMost = LatencyBelow(p=p, below_ms=below_ms, for_seconds=hold, window_seconds=2)
        what = f"p{p:g} latency below {below_ms:g} ms"
    else:
        base = baseline_ms(r.require_baseline(), p)
        rule = LatencyAtMost(p=p, baseline_ms=base, factor=factor or 1.5, for_seconds=hold, window_seconds=2)
        what = f"p{p:g} latency back within {factor or 1.5:g} x baseline ({base:.1f} ms)"
    at = _hold(r, rule, timeout, what)
    current = latency(r.require_load().records(since=at - 2), p)
    if r.journal is not None and current is not None:
        r.journal.measure(f"p{p:g} latency", current, "ms", target=rule.threshold_ms, detail=what)


def error_rate_stays_below(r: KubernetesRehearsal, percent: float, seconds: float) -> None:
    """Error rate strictly below ``percent`` % over every window of the next ``seconds`` s."""
    r.ensure_done()
    hold = seconds / r.timeline.scale
    rule = ErrorRateBelow(threshold=percent / 100, for_seconds=hold, window_seconds=min(5.0, max(hold, 1.0)))
    at = _hold(r, rule, hold + 10, f"error rate below {percent:g}% for {seconds:g}s")
    rate = error_rate(r.require_load().records(since=at - hold)) or 0.0
    if r.journal is not None:
        r.journal.measure(f"error rate over {hold:g}s", rate * 100, "%", target=percent, detail="held below the bound")


def share_at_least(r: KubernetesRehearsal, release: str, percent: float) -> None:
    """Release ``release`` served at least ``percent`` % of the last 10 s of traffic."""
    import time

    records = r.require_load().records(since=time.time() - SHARE_WINDOW_S)
    share = version_share(records).get(release, 0.0) * 100
    if r.journal is not None:
        r.journal.measure(f"share of traffic on {release}", share, "%", target=percent, bound="min")
    if share < percent:
        raise RehearsalFailed(f"release {release} served {share:.1f}% of the last {SHARE_WINDOW_S:g}s of traffic, "
                              f"expected at least {percent:g}%")


def endpoint_failing(r: KubernetesRehearsal, endpoint: str, percent: float, seconds: float, *, fails: bool) -> None:
    """Once the on-call's rollouts are complete, ``endpoint`` alone fails more than (``fails``) or at most
    ``percent`` % of its requests over every check of the next ``seconds`` s: what the code rollback alone did
    for it (e.g. the previous release's writes against the release's schema)."""
    r.ensure_done()
    source = EndpointRecords.parse(r.require_load(), endpoint)
    hold = seconds / r.timeline.scale
    rule: Trigger = (ErrorRateAbove(threshold=percent / 100, for_seconds=hold) if fails
                     else ErrorRateAtMost(threshold=percent / 100, for_seconds=hold))
    try:
        at = rule.wait(source, hold + 10, since=r.timeline.marks.get("done"), journal=r.journal)
    except TriggerTimeout as exc:
        raise RehearsalFailed(f"{source}: {exc.message}") from None
    rate = error_rate(source.records(since=at - hold)) or 0.0
    if r.journal is not None:
        r.journal.measure(f"{source} error rate over {hold:g}s", rate * 100, "%", target=percent,
                          bound="min" if fails else "max")
