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
from typing import TYPE_CHECKING, Any

from gameday.errors import ConfigError, RehearsalFailed
from gameday.faults import FAULT_ANNOTATION, FLAGS_MOUNT, FLAGS_VOLUME, parse_fault
from gameday.journal import Journal
from gameday.load import LoadGenerator
from gameday.load.baseline import Baseline, capture_baseline
from gameday.load.health import HealthChecks
from gameday.load.signals import errors_by_endpoint
from gameday.load.triggers import Trigger
from gameday.manifests import Manifests, check_flag_name, to_yaml
from gameday.procedures.kubectl import Kubectl
from gameday.project import Project, Service
from gameday.rehearsals.automatic import AutomaticRollback
from gameday.rehearsals.live import LiveOnCall
from gameday.rehearsals.traffic import detected_at, record_traffic
from gameday.timeline import RollbackTimeline

if TYPE_CHECKING:
    from gameday.rehearsals.database import ServiceDatabase

BASELINE_SECONDS = 2.0
ROLLOUT_TIMEOUT_S = 120.0
STABLE, CANARY = "stable", "canary"  # the tracks of a canary release, routed by a VirtualService
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
    weighted: bool = False  # a VirtualService splits the service's traffic between the stable and canary tracks
    flags: dict[str, bool] = field(default_factory=dict)  # its feature flags (ConfigMap <service>-flags)


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
        self.recovery: str | None = None  # what "recovered" meant, said by the check that marked it
        self.automatic: AutomaticRollback | None = None  # declared rules that roll back by themselves
        self.watched: dict[str, Trigger] = {}  # the alarm and rollback rules the scenario used, backtested at its end
        self.pruned: list[str] = []  # images this scenario took out of the embedded cluster's registry
        self.crashing: list[str] = []  # images this scenario made unable to start
        self._health: HealthChecks | None = None  # readiness of the service's pods, sampled (health-check rules)
        self.databases: dict[str, ServiceDatabase] = {}  # a service's own scratch database (release migrations)

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

    def deploy_canary_route(self, name: str | None, release: str, replicas: int) -> None:
        """The stable track, a Service per track and a VirtualService giving stable all the traffic."""
        service = self.service(name)
        manifests = self.manifests(service)
        deployed = self.deployed.setdefault(service.name, _Deployed(manifests))
        self.cluster.check_image(manifests.image(release))
        docs = [*manifests.render(release, replicas=replicas, track=STABLE, selector_track=STABLE),
                manifests.track_service(STABLE), manifests.track_service(CANARY),
                manifests.virtual_service({STABLE: 100, CANARY: 0})]
        self._apply(service, deployed, docs)
        deployed.deployments.append(manifests.deployment_name(STABLE))
        deployed.weighted = True
        self.wait_rollout(service, manifests.deployment_name(STABLE), ROLLOUT_TIMEOUT_S)
        deployed.stable = self.stable_version = release

    def _canary_route(self, service: Service) -> _Deployed:
        deployed = self.deployed.get(service.name)
        if deployed is None or not deployed.weighted:
            raise ConfigError(f"service {service.name} has no canary route in this scenario",
                              fix="start with 'the service \"NAME\" runs release \"R\" with N replicas on a stable "
                                  "track behind a virtual service'")
        return deployed

    def start_canary(self, name: str | None, release: str, percent: int, replicas: int, *,
                     fault: str | None = None) -> None:
        """The bad deploy of a canary: its Deployment comes up, then takes ``percent`` % of the traffic (t0)."""
        service = self.service(name)
        deployed = self._canary_route(service)
        manifests = deployed.manifests
        image = manifests.image(release)
        self.cluster.check_image(image)
        spec = parse_fault(fault, f"fault {fault!r}") if fault else None
        if spec is not None and spec.flag:
            raise ConfigError(f"fault {fault!r}: a canary's fault cannot be behind a feature flag",
                              fix="roll the flagged release out instead ('release ... is rolled out with the fault ...')")
        annotations = {FAULT_ANNOTATION: spec.describe()} if spec is not None else None
        canary = manifests.deployment_name(CANARY)
        self._apply(service, deployed, manifests.render(release, replicas=replicas, track=CANARY, with_service=False,
                                                        annotations=annotations))
        if canary not in deployed.deployments:
            deployed.deployments.append(canary)
        self.wait_rollout(service, canary, ROLLOUT_TIMEOUT_S)
        self._incident()  # users meet the canary from here
        self._set_canary_weight(service, percent)
        self._event("bad-deploy", f"virtualservice/{service.service_name} sends {percent}% of the traffic to "
                    f"deployment/{canary} ({image})" + (f" with fault {fault}" if fault else ""),
                    version=release, image=image, weight=percent)
        if self.live is not None:
            self.live.watch()

    def _set_canary_weight(self, service: Service, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise ConfigError(f"a canary weight of {percent}% is not a share of traffic", fix="use 0 to 100")
        patch = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100 - percent},
                 {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": percent}]
        self.kubectl(service).run("patch", f"virtualservice/{service.service_name}", "--type=json",
                                  "-p", json.dumps(patch))

    def _apply(self, service: Service, deployed: _Deployed, docs: list[dict[str, Any]]) -> None:
        if service.name in self.databases:
            docs = self.databases[service.name].inject(docs, deployed.manifests.container)
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
        for database in self.databases.values():
            database.migrations.close()
        if self.live is not None:
            self.live.stop()
        if self._health is not None:
            self._health.stop()
        if self.load is not None:
            self.load.stop()
            self.load = None
        catalog = getattr(getattr(self.cluster, "kubelet", None), "catalog", None)
        while self.pruned and catalog is not None:  # the registry serves them again for the next scenario
            catalog.unprune(self.pruned.pop())
        while self.crashing and catalog is not None:
            catalog.crash_on_start(self.crashing.pop(), False)
        for name, deployed in self.deployed.items():
            if deployed.objects:  # everything the team's manifests made, in the rehearsal namespace
                kubectl = self.kubectl(self.project.service(name))
                kubectl.run("delete", *reversed(deployed.objects), "--ignore-not-found", "--wait=false", check=False)
        self.deployed.clear()

    def record_signals(self) -> None:
        """Golden signals per second over the whole scenario, with the timeline's marks, and the backtest."""
        if self.load is None or self.journal is None:
            return
        record_traffic(self.journal, self.load.records(), self.timeline.marks, self.watched,
                       stable=self.stable_version, recovery=self.recovery,
                       health_checks=self._health.records() if self._health is not None else ())

    # -- the incident ----------------------------------------------------------------------
    def roll_out(self, release: str, deployment: str | None = None, *, fault: str | None = None,
                 pace: float | None = None) -> None:
        """The bad deploy (t0): the Deployment's container set to ``release``, optionally with a fault
        (one behind a feature flag gets the service's flags mounted, so the flag can kill it).

        ``pace`` rolls it one pod at a time (maxSurge 1, maxUnavailable 0), each pod watched that many
        seconds (minReadySeconds) before the next: a rolling update slow enough to halt part way."""
        service, name = self.owner(deployment)
        manifests = self.manifests(service)
        image = manifests.image(release)
        self.cluster.check_image(image)
        spec = parse_fault(fault, f"fault {fault!r}") if fault else None
        if spec is not None and spec.flag and spec.flag not in self._flags(service):
            raise ConfigError(f"fault {fault!r} is behind feature flag {spec.flag!r}, which service {service.name} "
                              "does not have in this scenario",
                              fix=f"add 'Given feature flag \"{spec.flag}\" of service \"{service.name}\" is on' first")
        if pace is not None:
            strategy = {"spec": {"minReadySeconds": max(0, round(pace / self.timeline.scale)),
                                 "strategy": {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}
            self.kubectl(service).run("patch", f"deployment/{name}", "-p", json.dumps(strategy))
        self._incident()
        if spec is not None:
            container: dict[str, Any] = {"name": manifests.container, "image": image}
            pod: dict[str, Any] = {"containers": [container]}
            if spec.flag:
                container["volumeMounts"] = [{"name": FLAGS_VOLUME, "mountPath": FLAGS_MOUNT, "readOnly": True}]
                pod["volumes"] = [{"name": FLAGS_VOLUME, "configMap": {"name": self.flags_configmap(service)}}]
            patch = {"spec": {"template": {"metadata": {"annotations": {FAULT_ANNOTATION: spec.describe()}},
                                           "spec": pod}}}
            self.kubectl(service).run("patch", f"deployment/{name}", "-p", json.dumps(patch))
        else:
            self.kubectl(service).run("set", "image", f"deployment/{name}", f"{manifests.container}={image}")
        self._event("bad-deploy", f"deployment/{name} set to {image}" + (f" with fault {fault}" if fault else "")
                    + (f", one pod at a time, each watched {pace:g} s" if pace is not None else ""),
                    version=release, image=image)
        if self.live is not None:
            self.live.watch()  # from here on, a change gameday did not make is the people's

    # -- a service's own database: a release that migrated it --------------------------------
    def give_database(self, name: str | None, dsn: str, revision: str, rows: int) -> ServiceDatabase:
        """The service's pods get ``dsn`` (a scratch database gameday started), migrated to ``revision``
        of the project's alembic history and seeded; set before the service is deployed."""
        service = self.service(name)
        env = service.database_variable()
        if service.name in self.deployed:
            raise ConfigError(f"service {service.name} is already deployed without its database",
                              fix="give it the database before 'the service ... runs release ...'")
        if getattr(self.cluster, "kubelet", None) is None:
            raise ConfigError("the service's pods reach a database gameday starts on this machine only on the "
                              "embedded cluster", fix="run this scenario with GAMEDAY_CLUSTER=local")
        from gameday.rehearsals.database import ServiceDatabase  # psycopg: only for scenarios with a database

        database = ServiceDatabase(service, dsn, env=env, script_location=self.project.migrations_location(),
                                   journal=self.journal)
        database.prepare(revision, rows)
        self.databases[service.name] = database
        if self.journal is not None:
            self.journal.at_scenario_end(database.account)
            self.journal.at_scenario_end(self._record_endpoints)
        return database

    def database(self, name: str | None = None) -> ServiceDatabase:
        service = self.service(name)
        if service.name not in self.databases:
            raise ConfigError(f"service {service.name} has no database in this scenario",
                              fix=f"start with 'the service \"{service.name}\" keeps its data in a rehearsal "
                                  "database at migration REV with N rows per table'")
        return self.databases[service.name]

    def roll_out_with_migration(self, revision: str, release: str, name: str | None = None) -> None:
        """The release begins (t0) with its migration, under the previous release's traffic, then its rollout."""
        database = self.database(name)
        database.before_release(revision)
        self._incident()
        database.migrate(revision)
        self.roll_out(release, self.service(name).deployment)

    def roll_back_migration(self, revision: str, name: str | None = None) -> None:
        """The on-call runs ``alembic downgrade`` of the release's migration, under load (in a live game
        day the people do, and gameday verifies where the database landed)."""
        service = self.service(name)
        database = self.database(name)
        self._act(service, None)
        database.roll_back(revision)

    def _record_endpoints(self) -> None:
        """Requests and failures per endpoint, before the release, during it, while the on-call acted, after."""
        if self.load is None or self.journal is None or "t0" not in self.timeline.marks:
            return
        marks = self.timeline.marks
        edges = [("before", 0.0), ("incident", marks["t0"])]
        edges += [(name, marks[key]) for name, key in (("acting", "acted"), ("after", "done")) if key in marks]
        rows = errors_by_endpoint(self.load.records(), edges, time.time())
        self._event("endpoints", f"requests and failures per endpoint over {len(edges)} phases", rows=rows)

    def _embedded_catalog(self, name: str | None, release: str, doing: str) -> tuple[Any, str]:
        """The embedded cluster's image catalog (its "registry") and the release's image, for a fault
        only the cluster gameday runs can have."""
        service = self.service(name)
        image = self.manifests(service).image(release)
        self.cluster.check_image(image)
        catalog = getattr(getattr(self.cluster, "kubelet", None), "catalog", None)
        if catalog is None:
            raise ConfigError(f"{doing} needs the embedded cluster, whose images gameday serves and runs",
                              fix="run this scenario on the embedded cluster (GAMEDAY_CLUSTER=local)")
        return catalog, image

    def prune_image(self, name: str | None, release: str) -> None:
        """The registry no longer serves ``release`` (a retention policy pruned it): running pods keep
        running, a new pod of it fails to pull (ErrImagePull).  The embedded cluster's registry only."""
        catalog, image = self._embedded_catalog(name, release, "pruning an image from the registry")
        catalog.prune(image)
        self.pruned.append(image)
        self._event("registry", f"{image} pruned from the registry: a new pull of it fails", image=image)

    def health_checks(self) -> HealthChecks:
        """The health checks of the scenario's service: each pod its Service selects, Ready or not, sampled
        every 0.5 s from the first call on (gameday.load.health)."""
        if self._health is None:
            service = self.service(None)
            found = json.loads(self.kubectl(service).run("get", f"service/{service.service_name}", "-o", "json").stdout)
            selector = (found.get("spec") or {}).get("selector") or {}
            if not selector:
                raise ConfigError(f"service/{service.service_name} selects no pods, so it has no health checks to read",
                                  fix="give the Service a selector, or drop the health-check rule")
            self._health = HealthChecks(self.cluster.api_client(), service.namespace, selector).start()
            self._event("health-checks", f"health checks: the readiness of the pods service/{service.service_name} "
                        f"selects ({self._health.selector}), sampled every {self._health.interval:g} s",
                        selector=self._health.selector, interval_s=self._health.interval)
        return self._health

    def crash_release(self, name: str | None, release: str) -> None:
        """A new container of ``release`` exits at start from now on (its configuration, secret or schema
        changed under it); pods running it keep running.  The embedded cluster's image catalog only."""
        catalog, image = self._embedded_catalog(name, release, "making a release unable to start")
        catalog.crash_on_start(image)
        self.crashing.append(image)
        self._event("release-broken", f"{image} can no longer start: a new container of it exits at once "
                    "(running ones keep running)", image=image)

    # -- feature flags (a ConfigMap of the rehearsal's, one key per flag) ---------------------
    def flags_configmap(self, service: Service) -> str:
        return f"{service.service_name}-flags"

    def _flags(self, service: Service) -> dict[str, bool]:
        return self.deployed[service.name].flags if service.name in self.deployed else {}

    def set_flag(self, name: str | None, flag: str, on: bool) -> None:
        """Feature flag ``flag`` of the service on or off (the ConfigMap is created with the first flag)."""
        check_flag_name(flag)
        service = self.service(name)
        deployed = self.deployed.setdefault(service.name, _Deployed(self.manifests(service)))
        configmap = self.flags_configmap(service)
        value = "on" if on else "off"
        if not deployed.flags:
            doc = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": configmap, "namespace": service.namespace,
                                "labels": {"app.kubernetes.io/managed-by": "gameday"}},
                   "data": {flag: value}}
            self._apply(service, deployed, [doc])
        else:
            self.kubectl(service).run("patch", f"configmap/{configmap}", "-p", json.dumps({"data": {flag: value}}))
        deployed.flags[flag] = on
        self._event("flag", f"feature flag {flag} of service {service.name} is {value} (configmap/{configmap})",
                    flag=flag, on=on)

    @_on_call
    def kill_switch(self, name: str | None, flag: str) -> None:
        """The on-call turns a feature flag off: no redeploy, the flagged code path stops."""
        service = self.service(name)
        if flag not in self._flags(service):
            raise ConfigError(f"service {service.name} has no feature flag {flag!r} in this scenario",
                              fix=f"add 'Given feature flag \"{flag}\" of service \"{service.name}\" is on' first")
        self.note_rollout_state()
        self._act(service, None)
        self.set_flag(service.name, flag, False)

    def note_rollout_state(self) -> None:
        """Each Deployment's generation, revision and ReplicaSet just before the on-call acts (scripted, or
        handed to the people), so a check can prove a kill switch redeployed nothing."""
        states = {}
        for name in self.deployed:
            service = self.project.service(name)
            for deployment in self.deployed[name].deployments:
                states[deployment] = self._rollout_state(service, deployment)
        self.remembered["rollout_state"] = json.dumps(states)

    def _rollout_state(self, service: Service, deployment: str) -> dict[str, Any]:
        """What a redeploy would change: the Deployment's generation, revision and current ReplicaSet."""
        obj = json.loads(self.kubectl(service).run("get", f"deployment/{deployment}", "-o", "json").stdout)
        revision = (obj["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        replicaset = next((rs["metadata"]["name"] for rs in self._replicasets(service, deployment)
                           if (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
                           == revision), None)
        return {"deployment": deployment, "generation": obj["metadata"].get("generation"), "revision": revision,
                "replicaset": replicaset}

    def _incident(self) -> None:
        """t0; and the phases reach the journal at scenario end even without a targets step."""
        if "t0" in self.timeline.marks:
            return  # the release began earlier (its migration ran before the rollout)
        if self.journal is not None:
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
        self.watched.setdefault(f"alarm: {scaled.describe()}", scaled)
        t0 = self.timeline.marks.get("t0")
        # when the rule really held, from the requests themselves (not when a poll noticed)
        detected = detected_at(scaled, load, timeout, t0=t0, journal=self.journal)
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

    @_on_call
    def set_canary_weight(self, name: str | None, percent: int) -> None:
        """The canary's share of the traffic (the stable track gets the rest), e.g. 5 % then 0 %."""
        service = self.service(name)
        self._canary_route(service)
        self._act(service, None)
        self._set_canary_weight(service, percent)

    @_on_call
    def delete_canary(self, name: str | None) -> None:
        """``kubectl delete deployment <deployment>-canary``: its pods go with it."""
        service = self.service(name)
        canary = self._canary_route(service).manifests.deployment_name(CANARY)
        self._act(service, None)
        self.kubectl(service).run("delete", f"deployment/{canary}")

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
            try:
                self.wait_rollout(service, name, timeout)
            except RehearsalFailed:
                if self.exists(service, f"deployment/{name}"):
                    raise
                # one the on-call deleted (a canary) has nothing left to roll out
        self.timeline.mark("done")

    def exists(self, service: Service, ref: str) -> bool:
        return bool(self.kubectl(service).run("get", ref, "--ignore-not-found", "-o", "name").stdout.strip())

    def require_load(self) -> LoadGenerator:
        if self.load is None:
            raise ConfigError("no traffic is running", fix="add a 'steady traffic ...' step before the incident")
        return self.load

    def require_baseline(self) -> Baseline:
        if self.baseline is None:
            raise ConfigError("no baseline was captured", fix="start traffic (it takes one) or add "
                              "'a baseline of the golden signals is captured over 5 seconds' before the incident")
        return self.baseline
