"""The rehearsal a runbook check runs against: only the parts its commands need.

- kubectl or curl in the runbook: a cluster from the provider registry (embedded by
  default) with every service of the project file deployed twice (release ``before``,
  then ``after``), so the rollout history has a revision to go back to;
- aws: the local AWS (moto; ECS is API state only, reported as simulated) with an ECS
  cluster and, per service, two task definitions and a service on the second; the
  generated ``.rollback_state`` names the first (PREV_TASK) and the cluster (AWS_CLUSTER);
- psql, pg_restore, pg_dump, alembic or a SQL block: a scratch database.

Also used by a game day (:func:`from_kubernetes_rehearsal`), where the rehearsal exists
already.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from gameday.errors import ConfigError
from gameday.journal import Fidelity, Journal
from gameday.project import Project
from gameday.runbook.bind import Bindings
from gameday.runbook.check import Rehearsal
from gameday.runbook.model import Step

_DATABASE_CLIS = {"psql", "pg_restore", "pg_dump", "alembic"}


def needs(steps: Iterable[Step]) -> set[str]:
    """Which parts a runbook's steps reach: kubernetes, aws, database."""
    clis = {c.cli for s in steps if s.kind in ("shell", "sql") for c in s.commands}
    wanted = set()
    if clis & {"kubectl", "curl"}:
        wanted.add("kubernetes")
    if "aws" in clis:
        wanted.add("aws")
    if clis & _DATABASE_CLIS or any(s.kind == "sql" for s in steps):
        wanted.add("database")
    return wanted


def kubernetes_map(cluster: Any, project: Project, bindings: Bindings) -> dict[str, Any]:
    """The shim's view of the cluster: kubeconfig, namespace map, contexts."""
    services = list(project.services.values())
    namespaces = {s.namespace: s.namespace for s in services}
    for theirs, ours in bindings.namespaces.items():
        cluster.prepare_namespace(ours)  # a rehearsal target (labelled) before anything acts in it
        namespaces[theirs] = ours
    return {"kubeconfig": str(cluster.kubeconfig), "namespaces": namespaces,
            "default_namespace": services[0].namespace if services else "default",
            "contexts": list(bindings.contexts), "owns_cluster": bool(getattr(cluster, "owns_cluster", False))}


def host_map(rehearsal: Any, project: Project, bindings: Bindings) -> dict[str, str]:
    """Team hosts -> rehearsal addresses: each service under its in-cluster names, plus the bindings'."""
    hosts: dict[str, str] = {}
    for service in project.services.values():
        url = rehearsal.service_url(service)
        name, ns = service.service_name, service.namespace
        for host in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
            hosts[host] = url
    for host, target in bindings.hosts.items():
        if "://" in target:
            hosts[host] = target
        elif target in project.services:
            hosts[host] = rehearsal.service_url(project.service(target))
        else:
            raise ConfigError(f"host {host} is bound to {target!r}, neither a URL nor a service of the project",
                              fix=f"name one of {', '.join(project.services)} or give a URL")
    return hosts


def from_kubernetes_rehearsal(rehearsal: Any, project: Project, bindings: Bindings) -> Rehearsal:
    """A game day's own rehearsal, for a runbook section followed as its act phase."""
    facts: dict[str, str] = {}
    service = rehearsal.service()
    with contextlib.suppress(Exception):
        revisions = rehearsal.revisions(service.deployment)
        facts["@current-revision"] = str(revisions[-1])
        if len(revisions) > 1:
            facts["@previous-revision"] = str(revisions[-2])
    if "revision" in rehearsal.remembered:
        facts["@noted-revision"] = rehearsal.remembered["revision"]
    facts["@namespace"] = service.namespace
    return Rehearsal(kubernetes=kubernetes_map(rehearsal.cluster, project, bindings),
                     hosts=host_map(rehearsal, project, bindings), facts=facts)


@contextlib.contextmanager
def check_environment(steps: list[Step], project: Project, bindings: Bindings, journal: Journal, *,
                      before: str | None = None, after: str | None = None) -> Iterator[Rehearsal]:
    """Start what ``steps`` need, prepare it, yield the map; everything stops on the way out."""
    from gameday.providers import provider

    wanted = needs(steps)
    with contextlib.ExitStack() as stack:
        rehearsal = Rehearsal()
        journal.environment["runbook_parts"] = sorted(wanted)
        if "kubernetes" in wanted:
            from gameday.rehearsals.kubernetes import KubernetesRehearsal

            cluster = stack.enter_context(provider("cluster", nodes=2, journal=journal, catalog=project.catalog()))
            k8s = KubernetesRehearsal(cluster, project, journal=journal)
            stack.callback(k8s.stop)
            for service in project.services.values():
                _deploy_history(k8s, service.name, before, after)
            built = from_kubernetes_rehearsal(k8s, project, bindings)
            rehearsal.kubernetes, rehearsal.hosts, rehearsal.facts = built.kubernetes, built.hosts, built.facts
        if "aws" in wanted:
            aws = stack.enter_context(provider("aws", journal=journal, run_tasks=False))
            if getattr(aws, "name", "") != "moto":
                raise ConfigError("a runbook check acts only on the local AWS (moto)",
                                  fix="unset GAMEDAY_AWS (or set it to moto)")
            state = _ecs(aws, project, bindings, journal)
            rehearsal.aws = {"endpoint": aws.endpoint, "env": aws.env()}
            rehearsal.rollback_state = {**(rehearsal.rollback_state or {}), **state}
            rehearsal.facts.update({"@aws-cluster": state["AWS_CLUSTER"], "@prev-task": state["PREV_TASK"]})
        if "database" in wanted:
            database = stack.enter_context(provider("database", journal=journal))
            dsn = database.create_database("runbook_rehearsal") if hasattr(database, "create_database") \
                else database.dsn
            rehearsal.database = {"dsn": dsn}
            if hasattr(database, "tool"):
                rehearsal.tools.update({t: database.tool(t) for t in ("psql", "pg_restore", "pg_dump")})
        yield rehearsal


def _deploy_history(k8s: Any, service: str, before: str | None, after: str | None) -> None:
    """Two revisions of the service: ``before`` then ``after`` (the same release, re-rolled, when None)."""
    k8s.deploy(service, before)
    owner = k8s.service(service)
    if after is not None and after != before:
        k8s.set_image(owner.deployment, after)
    else:
        patch = {"spec": {"template": {"metadata": {"annotations": {"gameday.io/rehearsal-revision": "2"}}}}}
        k8s.kubectl(owner).run("patch", f"deployment/{owner.deployment}", "-p", json.dumps(patch))
    k8s.wait_rollout(owner, owner.deployment, 120)
    k8s.timeline.marks.clear()  # setting up is not the incident
    k8s._acted_on.clear()


def _ecs(aws: Any, project: Project, bindings: Bindings, journal: Journal) -> dict[str, str]:
    from gameday.aws.ecs import Release, ensure_cluster, register

    ecs = aws.client("ecs")
    cluster = str(bindings.ecs.get("cluster") or bindings.values.get("AWS_CLUSTER") or project.model.name or "rehearsal")
    ensure_cluster(ecs, cluster)
    names = list(dict.fromkeys([*bindings.ecs.get("services", []), *project.services]))  # PREV_TASK: the first
    prev_task = ""
    for name in names:
        first = register(ecs, Release(family=name, repository=f"rehearsal/{name}", version="previous"))
        second = register(ecs, Release(family=name, repository=f"rehearsal/{name}", version="current"))
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=second, desiredCount=0)
        prev_task = prev_task or first
    journal.event("runbook-aws", f"ECS cluster {cluster} with services {', '.join(names)} (simulated: API state "
                  "only)", fidelity=Fidelity.SIMULATED.value, cluster=cluster, services=names)
    return {"AWS_CLUSTER": cluster, "PREV_TASK": prev_task, "DEPLOYMENT_ID": "rehearsal"}
