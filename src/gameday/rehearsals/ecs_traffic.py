"""An ECS rollback under load: the service's own load through a load balancer in front of its tasks.

The tasks are real processes behind the ECS API (moto: simulated); the balancer
(:class:`gameday.aws.balancer.TaskBalancer`) sends each request to a RUNNING, HEALTHY task,
so users meet a release from the moment ECS puts its tasks in service. Error rate and
served release are measured from the requests, as on Kubernetes, and the rollback is
timed on the same timeline: ``t0`` the deploy's update-service, ``detected`` when the alarm
rule held (from the records), ``acted`` the rollback's update-service, ``done`` the event
that made the service stable on the previous task definition, ``recovered`` every request
healthy and on the previous release again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gameday.aws.balancer import TaskBalancer, wait_for_targets
from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Journal
from gameday.load import LoadGenerator
from gameday.load.baseline import Baseline, capture_baseline
from gameday.load.triggers import Trigger, TriggerTimeout
from gameday.rehearsals.automatic import AutomaticRollback
from gameday.rehearsals.traffic import detected_at, record_traffic, wait_recovered
from gameday.timeline import RollbackTimeline

BASELINE_SECONDS = 2.0
TARGETS_TIMEOUT_S = 60.0


class EcsTraffic:
    def __init__(self, ecs: Any, cluster: str, service: str, *, journal: Journal, workdir: Path) -> None:
        self.ecs, self.cluster, self.service = ecs, cluster, service
        self.journal = journal
        self.workdir = workdir
        self.timeline = RollbackTimeline()
        self.balancer: TaskBalancer | None = None
        self.load: LoadGenerator | None = None
        self.watched: dict[str, Trigger] = {}
        self.stable: str | None = None
        self.recovery: str | None = None
        self.baseline: Baseline | None = None
        self.live: Any = None  # an automatic rollback is the system's own (see rehearsals.automatic)
        self.automatic: AutomaticRollback | None = None
        self.roll_back_to_previous: Callable[[], Any] = self._no_rollback  # set by the ECS rehearsal

    def start(self, profile: Any, *, users: int | None, tasks: int, stable: str, max_seconds: float = 600) -> None:
        """The balancer in front of the service's healthy tasks, the service's load through it, a clean baseline."""
        if profile is None:
            raise ConfigError("the service has no load in the project file", fix="add load: to the service")
        self.balancer = TaskBalancer(self.ecs, self.cluster, self.service).start()
        took = wait_for_targets(self.balancer, tasks, TARGETS_TIMEOUT_S)
        self.journal.event("ecs.balancer", f"load balancer {self.balancer.url} in front of {tasks} healthy tasks of "
                           f"{self.service} (targets read from the ECS API every 0.25 s)", waited_s=round(took, 3),
                           targets=self.balancer.endpoints()["targets"])
        if users is not None:
            profile = dataclasses.replace(profile, users=users)
        self.load = LoadGenerator(self.balancer.url, profile=profile, max_seconds=max_seconds, workdir=self.workdir,
                                  journal=self.journal)
        self.load.start()
        self.stable = stable
        self.journal.at_scenario_end(self.record)
        self.baseline = baseline = capture_baseline(self.load, seconds=BASELINE_SECONDS, timeout=60 + BASELINE_SECONDS,
                                                    version=stable)
        self.journal.event("baseline", f"clean baseline before the incident: {baseline.summary()}", **baseline.to_dict())

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()
        if self.balancer is not None:
            self.balancer.stop()

    def require_load(self) -> LoadGenerator:
        if self.load is None:
            raise ConfigError("no traffic is running",
                              fix="add 'steady traffic from N users through a load balancer in front of its tasks'")
        return self.load

    def require_baseline(self) -> Baseline:
        if self.baseline is None:
            raise ConfigError("no baseline was captured", fix="start the traffic before the incident")
        return self.baseline

    def health_checks(self) -> Any:
        raise ConfigError("a health-check rule reads Kubernetes pods' readiness; ECS tasks' health is the "
                          "service's own", fix="use an error-rate or latency rule on ECS")

    def _event(self, kind: str, message: str, **data: Any) -> None:
        self.journal.event(kind, message, **data)

    def _no_rollback(self) -> None:
        raise ConfigError("nothing can roll this service back", fix="run the traffic from an ECS rehearsal")

    def fire_automatic(self, timeout: float) -> None:
        if self.automatic is None:
            raise ConfigError("no automatic rollback was declared in this scenario",
                              fix="add 'Given the ECS service rolls back automatically by rolling back to the "
                                  "previous task definition when one of these rules holds:' with its table")
        self.automatic.fire_within(self, timeout)

    def wait_for_alarm(self, rule: Trigger, timeout: float) -> float:
        t0 = self.timeline.marks.get("t0")
        if t0 is None:
            raise RehearsalFailed("no release was deployed under load", fix="deploy a release after the traffic starts")
        self.watched.setdefault(f"alarm: {rule.describe()}", rule)
        detected = detected_at(rule, self.require_load(), timeout, t0=t0, journal=self.journal)
        return self.timeline.mark("detected", detected) - t0

    def wait_recovered(self, release: str, timeout: float) -> float:
        done = self.timeline.marks.get("done")
        if done is None:
            raise RehearsalFailed("the service was not seen stable after the rollback",
                                  fix="wait for it first ('the service is stable again within ...')")
        try:
            recovered = wait_recovered(self.require_load(), release, timeout, done=done, journal=self.journal)
        except TriggerTimeout as exc:
            raise RehearsalFailed(f"the traffic through the load balancer did not recover: {exc.message}") from None
        self.recovery = f"errors back down and every request through the load balancer served by {release}"
        return self.timeline.mark("recovered", recovered) - done

    def record(self) -> None:
        if self.load is not None:
            record_traffic(self.journal, self.load.records(), self.timeline.marks, self.watched,
                           stable=self.stable, recovery=self.recovery)
        if "t0" in self.timeline.marks and not self.timeline.recorded:
            self.timeline.record(self.journal)
