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

from gameday.errors import RehearsalFailed
from gameday.load import AllOf, ErrorRateAtMost, ErrorRateBelow, LatencyAtMost, LatencyBelow, VersionShare
from gameday.load.signals import error_rate, latency, version_share
from gameday.load.triggers import Trigger, TriggerTimeout
from gameday.rehearsals.kubernetes import KubernetesRehearsal, baseline_ms

# How long the signals must stay healthy before the service counts as recovered.
RECOVERY_HOLD_S = 3.0
RECOVERY_ERROR_RATE = 0.01
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
    load = r.require_load()
    hold = RECOVERY_HOLD_S / r.timeline.scale
    rule = AllOf((ErrorRateAtMost(threshold=RECOVERY_ERROR_RATE, for_seconds=hold, window_seconds=2),
                  VersionShare(version=release, at_least=1.0, for_seconds=hold, window_seconds=2)))
    done = r.timeline.marks.get("done")
    confirmed = rule.wait(load, timeout, since=done, journal=r.journal)
    # Recovery happened when the healthy stretch began (the first good request sent after the
    # last bad one), not when it had lasted long enough, nor when a poll noticed.
    recovered = max(rule.moment(load.records(since=None if done is None else done - 1), done, confirmed),
                    done if done is not None else -1.0)
    return r.timeline.mark("recovered", recovered) - r.timeline.marks.get("done", recovered)


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
