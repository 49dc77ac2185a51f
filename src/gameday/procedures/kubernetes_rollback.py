"""A Kubernetes rollback rehearsal under load: deploy a stable release, put real traffic
on it through the service proxy, ship a bad release, wait for the alarm rule, run the
team's rollback command with kubectl, and measure until traffic is healthy and served
by the stable release again.

Each act marks the :class:`~gameday.timeline.RollbackTimeline`; each check proves its
effect from the cluster (the image the Deployment runs) and from the traffic (the
version that served the last requests).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jinja2

from gameday.errors import RehearsalFailed
from gameday.journal import Journal
from gameday.load import AllOf, ErrorRateAtMost, LoadGenerator, VersionShare
from gameday.load.signals import signal_series
from gameday.load.triggers import Trigger
from gameday.paths import shipped
from gameday.procedures.kubectl import Kubectl
from gameday.timeline import RollbackTimeline

DEMO_IMAGE = "gameday/demo"
# How long the signals must stay healthy before the service counts as recovered.
RECOVERY_HOLD_S = 3.0


def demo_manifest(*, name: str, version: str, replicas: int, track: str = "stable", service: str | None = None,
                  selector: dict[str, str] | None = None, progress_deadline: int = 60) -> str:
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (shipped("scenarios") / "kubernetes" / "demo.yaml.j2").read_text())
    return template.render(name=name, track=track, image=f"{DEMO_IMAGE}:{version}", replicas=replicas,
                           service=service, selector=selector or {"app": "demo"}, progress_deadline=progress_deadline)


class KubernetesRehearsal:
    def __init__(self, cluster: Any, *, journal: Journal | None = None, namespace: str = "default",
                 scale: float = 1.0, workdir: Path | None = None) -> None:
        self.cluster = cluster
        self.journal = journal
        self.namespace = namespace
        self.kubectl = Kubectl(cluster.kubeconfig, namespace=namespace, journal=journal)
        self.timeline = RollbackTimeline(scale=scale)
        self.workdir = workdir
        self.service = "demo"
        self.stable_version: str | None = None
        self.deployments: list[str] = []
        self.load: LoadGenerator | None = None

    # -- the environment ---------------------------------------------------------
    def deploy(self, version: str, replicas: int, *, name: str = "demo", track: str = "stable",
               service: str | None = "demo", selector: dict[str, str] | None = None, timeout: float = 120) -> None:
        """Apply a Deployment (and its Service) and wait until the rollout is complete."""
        self.kubectl.apply(demo_manifest(name=name, version=version, replicas=replicas, track=track, service=service,
                                         selector=selector))
        self.deployments.append(name)
        self.wait_rollout(name, timeout)
        if service:
            self.service = service
        self.stable_version = self.stable_version or version

    def wait_rollout(self, name: str, timeout: float) -> float:
        began = time.monotonic()
        self.kubectl.run("rollout", "status", f"deployment/{name}", f"--timeout={int(timeout)}s", timeout=timeout + 15)
        return time.monotonic() - began

    def deploy_blue_green(self, blue: str, green: str, replicas: int) -> None:
        """Two tracks side by side; the Service starts on blue, the stable release."""
        self.deploy(green, replicas, name="demo-green", track="green", service=None)
        self.deploy(blue, replicas, name="demo-blue", track="blue", service="demo",
                    selector={"app": "demo", "track": "blue"})
        self.stable_version = blue

    def service_url(self) -> str:
        if self.cluster.proxy is None:
            raise RehearsalFailed("the cluster has no service proxy: traffic cannot reach the service")
        host, port = self.cluster.proxy.address(self.service, 80, self.namespace)
        return f"http://{host}:{port}"

    def start_load(self, users: int, *, max_seconds: float = 600) -> LoadGenerator:
        self.load = LoadGenerator(self.service_url(), users=users, spawn_rate=users, max_seconds=max_seconds,
                                  workdir=self.workdir, journal=self.journal)
        self.load.start()
        if self.journal is not None:
            self.journal.at_scenario_end(self.record_signals)
        assert self.stable_version is not None
        # A baseline first: the stable release must be serving everything before we break it.
        VersionShare(version=self.stable_version, at_least=1.0, window_seconds=2, for_seconds=1).wait(
            self.load, timeout=60, journal=self.journal)
        return self.load

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()
            self.load = None
        for name in reversed(self.deployments):
            self.kubectl.run("delete", f"deployment/{name}", "--ignore-not-found", "--wait=false", check=False)
        if self.deployments:
            self.kubectl.run("delete", f"service/{self.service}", "--ignore-not-found", check=False)
        self.deployments.clear()

    def record_signals(self) -> None:
        """Golden signals per second over the whole scenario, with the timeline's marks,
        so reports can draw what the traffic saw."""
        if self.load is None or self.journal is None:
            return
        records = self.load.records()
        if not records:
            return
        start, end = records[0].ts, records[-1].ts
        # about 120 points whatever the length, never finer than half a second
        series = signal_series(records, start=start, end=end, step=max(0.5, (end - start) / 120))
        marks = {name: round(at - start, 3) for name, at in self.timeline.marks.items()}
        self.journal.event("signals", f"golden signals over {end - start:.0f} s of traffic ({len(series)} points)",
                           series=series, marks=marks, stable=self.stable_version)

    # -- the incident ------------------------------------------------------------
    def ship_bad_release(self, version: str, *, deployment: str = "demo") -> None:
        self.timeline.mark("t0")
        self.kubectl.run("set", "image", f"deployment/{deployment}", f"demo={DEMO_IMAGE}:{version}")
        if self.journal is not None:
            self.journal.event("bad-deploy", f"deployment/{deployment} set to {DEMO_IMAGE}:{version}", version=version)

    def switch_service(self, track: str) -> None:
        """The blue-green cut-over: the Service's selector moves to ``track``."""
        self.timeline.mark("t0")
        patch = {"spec": {"selector": {"app": "demo", "track": track}}}
        self.kubectl.run("patch", f"service/{self.service}", "-p", json.dumps(patch))

    def wait_for_alarm(self, rule: Trigger, timeout: float) -> float:
        load = self._require_load()
        scaled = rule.scaled(self.timeline.scale) if self.timeline.scale != 1 else rule
        detected = scaled.wait(load, timeout, since=self.timeline.marks.get("t0"), journal=self.journal)
        return self.timeline.mark("detected", detected) - self.timeline.marks["t0"]

    def run_rollback(self, command: str, *, timeout: float = 180) -> float:
        """The on-call's command, then every demo Deployment's rollout to completion."""
        self.timeline.mark("acted")
        self.kubectl.run_line(command, timeout=timeout)
        for name in self.deployments:
            self.wait_rollout(name, timeout)
        return self.timeline.mark("done") - self.timeline.marks["acted"]

    def wait_recovered(self, version: str, timeout: float) -> float:
        """Error rate ≤ 1 % and 100 % of traffic on ``version``, held for a few seconds."""
        load = self._require_load()
        hold = RECOVERY_HOLD_S / self.timeline.scale
        rule = AllOf((ErrorRateAtMost(threshold=0.01, for_seconds=hold, window_seconds=2),
                      VersionShare(version=version, at_least=1.0, for_seconds=hold, window_seconds=2)))
        confirmed = rule.wait(load, timeout, since=self.timeline.marks.get("done"), journal=self.journal)
        # Recovery happened when the healthy stretch began, not when it had lasted long enough.
        recovered = max(confirmed - hold, self.timeline.marks.get("done", confirmed))
        return self.timeline.mark("recovered", recovered) - self.timeline.marks["done"]

    # -- proofs ------------------------------------------------------------------
    def require_image(self, deployment: str, version: str) -> None:
        image = self.kubectl.jsonpath(f"deployment/{deployment}", "{.spec.template.spec.containers[0].image}")
        revision = self.kubectl.jsonpath(f"deployment/{deployment}",
                                         "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}")
        if self.journal is not None:
            self.journal.event("verify", f"deployment/{deployment} runs {image} (revision {revision})",
                               image=image, revision=revision)
        if image != f"{DEMO_IMAGE}:{version}":
            raise RehearsalFailed(f"deployment/{deployment} runs {image}, expected {DEMO_IMAGE}:{version}")

    def require_selector(self, track: str) -> None:
        selected = self.kubectl.jsonpath(f"service/{self.service}", "{.spec.selector.track}")
        if selected != track:
            raise RehearsalFailed(f"service/{self.service} selects track {selected or '(none)'}, expected {track}")

    def require_served_by(self, version: str, last: int = 50) -> None:
        records = self._require_load().records()[-last:]
        if len(records) < last:
            raise RehearsalFailed(f"only {len(records)} requests were made; {last} needed to prove who serves traffic")
        others = sorted({r.version for r in records if r.version != version})
        if self.journal is not None:
            share = sum(r.version == version for r in records) / len(records)
            self.journal.measure(f"last {last} requests served by {version}", share * 100, "%", target=100, bound="min")
        if others:
            raise RehearsalFailed(f"of the last {last} requests some were served by {', '.join(others)}, not {version}")

    def _require_load(self) -> LoadGenerator:
        if self.load is None:
            raise RehearsalFailed("no traffic is running", fix="start load before the incident")
        return self.load
