"""A Kubernetes rollback rehearsal of any service in the project file, under its own load.

Deploy a stable release from the team's manifests, put the team's load on it, take a
clean baseline, ship a bad release, wait for the alarm rule, let the on-call act the
way the runbook says (kubectl, undo to a noted revision, a selector switch, ...), and
measure until the traffic is healthy and served by the stable release again.

Each act marks the :class:`~gameday.timeline.RollbackTimeline`: ``t0`` the bad deploy,
``acted`` the on-call's first rollback action, ``done`` the rollouts it started
complete, ``recovered`` the traffic healthy again.  Proofs live in
:mod:`gameday.rehearsals.kubernetes_checks`.

    rehearsal = KubernetesRehearsal(cluster, project, journal=journal)
    rehearsal.deploy("checkout-api", "1.0.0", replicas=3)
    rehearsal.start_load("checkout-api")
    rehearsal.roll_out("1.1.0-bad")
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError, RehearsalFailed
from gameday.faults import FAULT_ANNOTATION, parse_fault
from gameday.journal import Journal
from gameday.load import LoadGenerator
from gameday.load.baseline import Baseline, capture_baseline
from gameday.load.signals import signal_series
from gameday.load.triggers import Trigger
from gameday.manifests import Manifests, to_yaml
from gameday.procedures.kubectl import Kubectl
from gameday.project import Project, Service
from gameday.rehearsals.live import LiveOnCall
from gameday.timeline import RollbackTimeline

BASELINE_SECONDS = 2.0
ROLLOUT_TIMEOUT_S = 120.0
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def baseline_ms(baseline: Baseline, p: float) -> float:
    """The baseline's p50/p95/p99 latency in ms."""
    value = getattr(baseline, f"p{p:g}_ms", None)
    if value is None:
        raise ConfigError(f"the baseline has no p{p:g} latency", fix="use p50, p95 or p99")
    return float(value)


@dataclass
class _Deployed:
    """What the rehearsal created for one service (deleted when it stops)."""

    manifests: Manifests
    deployments: list[str] = field(default_factory=list)
    stable: str | None = None
    objects: list[str] = field(default_factory=list)  # kind/name of everything applied, to delete after


def _on_call(method: Any) -> Any:
    """An on-call action: in a live game day (``live`` set) the people do it, not gameday."""
    @functools.wraps(method)
    def gated(self: KubernetesRehearsal, *args: Any, **kwargs: Any) -> Any:
        if self.live is not None:
            words = [method.__name__.replace("_", " "), *(str(a) for a in args if a is not None)]
            return self.live.take_over(" ".join(words))
        return method(self, *args, **kwargs)
    return gated


class KubernetesRehearsal:
    def __init__(self, cluster: Any, project: Project, *, journal: Journal | None = None, scale: float = 1.0,
                 workdir: Path | None = None) -> None:
        self.cluster = cluster
        self.project = project
        self.journal = journal
        self.workdir = workdir
        self.timeline = RollbackTimeline(scale=scale)
        self.deployed: dict[str, _Deployed] = {}
        self.remembered: dict[str, str] = {}  # values a step noted for later ones: revision, ...
        self.load: LoadGenerator | None = None
        self.load_service: Service | None = None
        self.baseline: Baseline | None = None
        self.stable_version: str | None = None
        self._acted_on: list[tuple[str, str]] = []  # (namespace, deployment) the on-call acted on
        self._kubectl: dict[str, Kubectl] = {}
        self._namespaces: set[str] = set()
        self.live: LiveOnCall | None = None  # a live game day: the people on call act (see rehearsals.live)

    # -- names -----------------------------------------------------------------------------
    def service(self, name: str | None = None) -> Service:
        if name is None and self.load_service is not None:
            return self.load_service
        if name is None and len(self.deployed) == 1:
            return self.project.service(next(iter(self.deployed)))
        return self.project.service(name)

    def manifests(self, service: Service) -> Manifests:
        if service.name in self.deployed:
            return self.deployed[service.name].manifests
        return Manifests.load(service)

    def owner(self, deployment: str | None) -> tuple[Service, str]:
        """The service a Deployment name belongs to (its own, or a blue/green track of it)."""
        if deployment is None:
            service = self.service()
            return service, service.deployment
        for service in self.project.services.values():
            tracks = self.deployed.get(service.name)
            names = tracks.deployments if tracks else []
            if deployment == service.deployment or deployment in names:
                return service, deployment
        known = sorted({s.deployment for s in self.project.services.values()}
                       | {d for t in self.deployed.values() for d in t.deployments})
        raise ConfigError(f"deployment {deployment!r} is not one of the project's ({', '.join(known)})",
                          fix=f"name a Deployment of a service in {self.project.path}")

    def kubectl(self, service: Service) -> Kubectl:
        namespace = service.namespace
        if namespace not in self._namespaces:
            self.cluster.prepare_namespace(namespace)
            self._namespaces.add(namespace)
        if namespace not in self._kubectl:
            self._kubectl[namespace] = Kubectl(self.cluster.kubeconfig, namespace=namespace, journal=self.journal)
        return self._kubectl[namespace]

    def _event(self, kind: str, message: str, **data: Any) -> None:
        if self.journal is not None:
            self.journal.event(kind, message, **data)

    # -- the environment -------------------------------------------------------------------
    def deploy(self, name: str | None, release: str | None, replicas: int | None = None, *,
               timeout: float = ROLLOUT_TIMEOUT_S) -> None:
        """Apply the service's manifests for ``release`` (None: the image the manifest names) and wait."""
        service = self.service(name)
        manifests = self.manifests(service)
        deployed = self.deployed.setdefault(service.name, _Deployed(manifests))
        if release is not None:
            self.cluster.check_image(manifests.image(release))
        docs = manifests.render(release, replicas=replicas)
        self._apply(service, deployed, docs)
        if service.deployment not in deployed.deployments:
            deployed.deployments.append(service.deployment)
        self.wait_rollout(service, service.deployment, timeout)
        served = release or manifests.written_release()
        deployed.stable = deployed.stable or served
        self.stable_version = self.stable_version or served

    def deploy_blue_green(self, name: str | None, blue: str, green: str, replicas: int) -> None:
        """Two tracks side by side; the Service starts on blue, the stable release."""
        service = self.service(name)
        manifests = self.manifests(service)
        deployed = self.deployed.setdefault(service.name, _Deployed(manifests))
        for release in (blue, green):
            self.cluster.check_image(manifests.image(release))
        docs = [*manifests.render(green, replicas=replicas, track="green", with_service=False),
                *manifests.render(blue, replicas=replicas, track="blue", selector_track="blue")]
        self._apply(service, deployed, docs)
        for track in ("green", "blue"):
            deployed.deployments.append(manifests.deployment_name(track))
            self.wait_rollout(service, manifests.deployment_name(track), ROLLOUT_TIMEOUT_S)
        deployed.stable = self.stable_version = blue

    def _apply(self, service: Service, deployed: _Deployed, docs: list[dict[str, Any]]) -> None:
        self.kubectl(service).apply(to_yaml(docs))
        for doc in docs:
            ref = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
            if ref not in deployed.objects:
                deployed.objects.append(ref)

    def wait_rollout(self, service: Service, deployment: str, timeout: float) -> float:
        began = time.monotonic()
        result = self.kubectl(service).run("rollout", "status", f"deployment/{deployment}", f"--timeout={int(timeout)}s",
                                           timeout=timeout + 15, check=False)
        if result.returncode != 0:
            raise RehearsalFailed(f"deployment/{deployment} did not complete its rollout within {timeout:g}s: "
                                  f"{result.first_error_line}")
        return time.monotonic() - began

    def service_url(self, service: Service) -> str:
        if service.url:
            return service.url.rstrip("/")
        manifests = self.manifests(service)
        self.kubectl(service)  # the namespace is prepared (and proven a rehearsal target) first
        return str(self.cluster.service_url(service.namespace, service.service_name, manifests.service_port))

    def start_load(self, name: str | None = None, *, users: int | None = None, max_seconds: float = 600) -> None:
        """The service's own load (project file), then a clean baseline on the stable release."""
        service = self.service(name)
        profile = service.need("its load (a locustfile or declared requests)", service.load, "load:")
        if users is not None:
            profile = dataclasses.replace(profile, users=users)
        self.load_service = service
        self.load = LoadGenerator(self.service_url(service), profile=profile, max_seconds=max_seconds,
                                  workdir=self.workdir, journal=self.journal)
        self.load.start()
        if self.journal is not None:
            self.journal.at_scenario_end(self.record_signals)
        self.capture_baseline(BASELINE_SECONDS, measured=False)

    def capture_baseline(self, seconds: float, *, measured: bool = True) -> Baseline:
        """Golden signals of the healthy service; the run stops here if they are not clean.

        The gate every load start passes is an event; a baseline step's figures are measurements.
        """
        load = self.require_load()
        service = self.service()
        version = self.deployed[service.name].stable if service.release and service.name in self.deployed else None
        self.baseline = capture_baseline(load, seconds=seconds / self.timeline.scale, timeout=60 + seconds,
                                         version=version, journal=self.journal if measured else None)
        if not measured:
            self._event("baseline", f"clean baseline before the incident: {self.baseline.summary()}",
                        **self.baseline.to_dict())
        return self.baseline

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
        if self.load is not None:
            self.load.stop()
            self.load = None
        for name, deployed in self.deployed.items():
            if deployed.objects:  # everything the team's manifests made, in the rehearsal namespace
                kubectl = self.kubectl(self.project.service(name))
                kubectl.run("delete", *reversed(deployed.objects), "--ignore-not-found", "--wait=false", check=False)
        self.deployed.clear()

    def record_signals(self) -> None:
        """Golden signals per second over the whole scenario, with the timeline's marks."""
        if self.load is None or self.journal is None:
            return
        records = self.load.records()
        if not records:
            return
        start, end = records[0].ts, records[-1].ts
        series = signal_series(records, start=start, end=end, step=max(0.5, (end - start) / 120))
        marks = {name: round(at - start, 3) for name, at in self.timeline.marks.items()}
        self.journal.event("signals", f"golden signals over {end - start:.0f} s of traffic ({len(series)} points)",
                           series=series, marks=marks, origin=round(start, 3), stable=self.stable_version)

    # -- the incident ----------------------------------------------------------------------
    def roll_out(self, release: str, deployment: str | None = None, *, fault: str | None = None) -> None:
        """The bad deploy (t0): the Deployment's container set to ``release``, optionally with a fault."""
        service, name = self.owner(deployment)
        manifests = self.manifests(service)
        image = manifests.image(release)
        self.cluster.check_image(image)
        annotations = {FAULT_ANNOTATION: parse_fault(fault, f"fault {fault!r}").describe()} if fault else {}
        self._incident()
        if annotations:
            patch = {"spec": {"template": {"metadata": {"annotations": annotations},
                                           "spec": {"containers": [{"name": manifests.container, "image": image}]}}}}
            self.kubectl(service).run("patch", f"deployment/{name}", "-p", json.dumps(patch))
        else:
            self.kubectl(service).run("set", "image", f"deployment/{name}", f"{manifests.container}={image}")
        self._event("bad-deploy", f"deployment/{name} set to {image}" + (f" with fault {fault}" if fault else ""),
                    version=release, image=image)
        if self.live is not None:
            self.live.watch()  # from here on, a change gameday did not make is the people's

    def _incident(self) -> None:
        """t0; and the phases reach the journal at scenario end even without a targets step."""
        if "t0" not in self.timeline.marks and self.journal is not None:
            self.journal.at_scenario_end(self._record_phases)
        self.timeline.mark("t0")

    def _record_phases(self) -> None:
        if not self.timeline.recorded:
            self.timeline.record(self.journal)

    def switch_service(self, name: str | None, track: str) -> None:
        """The blue-green cut-over: the Service's selector moves to ``track`` (t0)."""
        service = self.service(name)
        self._incident()
        self._patch_selector(service, track)
        if self.live is not None:
            self.live.watch()

    def _patch_selector(self, service: Service, track: str) -> None:
        selector = {**self.manifests(service).selector(), "track": track}
        patch = {"spec": {"selector": selector}}
        self.kubectl(service).run("patch", f"service/{service.service_name}", "-p", json.dumps(patch))

    def wait_for_alarm(self, rule: Trigger, timeout: float) -> float:
        load = self.require_load()
        if hasattr(rule, "with_baseline_value") and getattr(rule, "baseline_ms", 0) is None \
                and getattr(rule, "above_ms", None) is None:
            rule = rule.with_baseline_value(baseline_ms(self.require_baseline(), getattr(rule, "p", 95)))
        scaled = rule.scaled(self.timeline.scale) if self.timeline.scale != 1 else rule
        t0 = self.timeline.marks.get("t0")
        fired = scaled.wait(load, timeout, since=t0, journal=self.journal)
        # when the rule really held, from the requests themselves (not when a poll noticed)
        detected = scaled.moment(load.records(since=None if t0 is None else t0 - 1), t0, fired)
        return self.timeline.mark("detected", detected) - self.timeline.marks["t0"]

    # -- the on-call's actions (the first one marks "acted") --------------------------------
    def _act(self, service: Service, deployment: str | None) -> None:
        self.timeline.marks.setdefault("acted", time.time())
        self.timeline.marks.pop("done", None)
        if deployment is not None and (service.namespace, deployment) not in self._acted_on:
            self._acted_on.append((service.namespace, deployment))

    def acted_on(self, namespace: str, deployment: str) -> None:
        """A Deployment the people acted on in a live game day: "done" waits for its rollout too."""
        self.timeline.marks.pop("done", None)
        if (namespace, deployment) not in self._acted_on:
            self._acted_on.append((namespace, deployment))

    def begin_acting(self, service: Service) -> None:
        """The on-call starts acting on the service (e.g. following the runbook): "acted", and every
        Deployment of it is one whose rollout "done" waits for."""
        self._act(service, None)
        for name in (self.deployed[service.name].deployments if service.name in self.deployed else []):
            self._act(service, name)

    @_on_call
    def follow_runbook(self, path: str, section: str) -> Any:
        """The act phase performed by the team's runbook section itself (see gameday.runbook.follow)."""
        from gameday.runbook.follow import follow_section

        return follow_section(self, path, section)

    def check_runbook(self, path: str) -> Any:
        """The whole runbook run against this rehearsal (no timeline marks): see gameday.runbook.follow."""
        from gameday.runbook.follow import check_whole

        return check_whole(self, path)

    @_on_call
    def run_command(self, command: str, *, timeout: float = 180) -> None:
        """A kubectl line from the runbook; ``{revision}`` and other noted values are filled in."""
        line = _PLACEHOLDER.sub(lambda m: self._remembered(m.group(1)), command)
        service = self.service()
        words = shlex.split(line)
        targets = [w.split("/", 1)[1] for w in words if w.startswith(("deployment/", "deploy/", "deployments/"))]
        self._act(service, None)
        for target in targets:
            owner, name = self.owner(target)
            self._act(owner, name)
        if not targets and self.deployed.get(service.name):
            for name in self.deployed[service.name].deployments:
                self._act(service, name)
        self.kubectl(service).run_line(line, timeout=timeout)

    def _remembered(self, key: str) -> str:
        if key not in self.remembered:
            raise ConfigError(f"the command uses {{{key}}} but no step noted a {key}",
                              fix="note it first, e.g. 'the on-call engineer notes the previous revision ...'")
        return self.remembered[key]

    def revisions(self, deployment: str | None) -> list[int]:
        """``kubectl rollout history``: the revisions the Deployment keeps, oldest first."""
        service, name = self.owner(deployment)
        history = self.kubectl(service).run("rollout", "history", f"deployment/{name}").stdout
        return sorted(int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s", history, re.MULTILINE))

    @_on_call
    def note_revision(self, deployment: str | None, which: str) -> int:
        """Remember the current or the previous revision (from ``rollout history``) for later steps."""
        service, name = self.owner(deployment)
        revisions = self.revisions(name)
        if which == "current" or len(revisions) < 2:
            if which != "current":
                raise RehearsalFailed(f"deployment/{name} has no previous revision (history: {revisions})")
            revision = revisions[-1]
        else:
            revision = revisions[-2]
        self.remembered["revision"] = str(revision)
        self.remembered["revision_template"] = self._template_hash(service, name, revision)
        self._event("noted", f"deployment/{name} revision {revision} noted", revision=revision)
        return revision

    def _template_hash(self, service: Service, deployment: str, revision: int) -> str:
        """The pod-template-hash of the ReplicaSet that is ``revision`` of ``deployment``."""
        for rs in self._replicasets(service, deployment):
            annotations = rs["metadata"].get("annotations") or {}
            if annotations.get("deployment.kubernetes.io/revision") == str(revision):
                return str(rs["metadata"].get("labels", {}).get("pod-template-hash", ""))
        return ""

    def _replicasets(self, service: Service, deployment: str) -> list[dict[str, Any]]:
        raw = self.kubectl(service).run("get", "replicasets", "-o", "json").stdout
        return [rs for rs in json.loads(raw).get("items", [])
                if any(o.get("kind") == "Deployment" and o.get("name") == deployment
                       for o in rs["metadata"].get("ownerReferences") or [])]

    @_on_call
    def undo(self, deployment: str | None, to_revision: int | str | None = None) -> None:
        """``kubectl rollout undo`` (to a given or the noted revision)."""
        service, name = self.owner(deployment)
        args = ["rollout", "undo", f"deployment/{name}"]
        if to_revision == "noted":
            to_revision = self._remembered("revision")
        if to_revision is not None:
            args.append(f"--to-revision={to_revision}")
        self._act(service, name)
        self.kubectl(service).run(*args)

    @_on_call
    def kubectl_action(self, deployment: str | None, *args: str) -> None:
        """An on-call action on a Deployment: pause, resume, scale, set image, ..."""
        service, name = self.owner(deployment)
        self._act(service, name)
        self.kubectl(service).run(*[a.replace("{deployment}", name) for a in args])

    @_on_call
    def set_image(self, deployment: str | None, release: str) -> None:
        service, name = self.owner(deployment)
        manifests = self.manifests(service)
        self.cluster.check_image(manifests.image(release))
        self.kubectl_action(name, "set", "image", f"deployment/{name}", f"{manifests.container}={manifests.image(release)}")

    @_on_call
    def switch_back(self, name: str | None, track: str) -> None:
        service = self.service(name)
        self._act(service, None)
        self._patch_selector(service, track)

    def rollout_completes(self, deployment: str | None, timeout: float) -> float:
        """``kubectl rollout status`` within ``timeout``; after an on-call action this is "done"."""
        service, name = self.owner(deployment)
        took = self.wait_rollout(service, name, timeout)
        if "acted" in self.timeline.marks and "done" not in self.timeline.marks:
            self._finish_acting()
        return took

    def ensure_done(self, timeout: float = ROLLOUT_TIMEOUT_S) -> None:
        """Every rollout the on-call started is complete: the "done" mark (once)."""
        if "acted" in self.timeline.marks and "done" not in self.timeline.marks:
            self._finish_acting(timeout)

    def _finish_acting(self, timeout: float = ROLLOUT_TIMEOUT_S) -> None:
        for namespace, name in self._acted_on:
            service = next(s for s in self.project.services.values() if s.namespace == namespace)
            self.wait_rollout(service, name, timeout)
        self.timeline.mark("done")

    def require_load(self) -> LoadGenerator:
        if self.load is None:
            raise ConfigError("no traffic is running", fix="add a 'steady traffic ...' step before the incident")
        return self.load

    def require_baseline(self) -> Baseline:
        if self.baseline is None:
            raise ConfigError("no baseline was captured", fix="start traffic (it takes one) or add "
                              "'a baseline of the golden signals is captured over 5 seconds' before the incident")
        return self.baseline
