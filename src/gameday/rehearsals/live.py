"""Live game days: the people on call roll back, however they choose, and gameday measures it.

``gameday run --live`` breaks the service the way the scenario says, then, where the scenario
has the on-call engineer act, hands over to the people: they get the rehearsal cluster's
kubeconfig and namespace and act with kubectl, their own scripts or a pipeline.  gameday
does not act; it watches the service's Deployments and Services from the bad deploy on, and
the first change it did not make itself (a Deployment's spec: image, replicas, paused, a
rollout undo, or its deletion; a Service's selector; a VirtualService's routes and weights;
the service's feature flags, the kill switch) is "acted", stamped when the API server told the watch.
"decide" is then the people's own (alarm to first action); "act" runs to the rollouts they
started being complete; the scenario's checks judge the outcome as usual.

A terminal dashboard (rich Live; plain lines when not a terminal) shows the golden signals,
the alarm and the elapsed time; a hint (the scenario's scripted action) comes after
GAMEDAY_LIVE_HINT_AFTER seconds, and GAMEDAY_LIVE_GIVE_UP bounds the wait.

ECS and release-migration scenarios have their own watch, with the same hand-over, hint and
give-up (gameday.procedures.ecs_rollback, gameday.procedures.alembic_downgrade).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gameday import settings
from gameday.errors import RehearsalFailed
from gameday.lifecycle import raise_if_a_part_died

T = TypeVar("T")


def wait_for_people(changed: Callable[[], T | None], *, scripted: str, say: Callable[[str], None],
                    journal: Any = None, hint_from: float | None = None, poll: float = 0.2,
                    on_wait: Callable[[float], None] | None = None, give_up: float | None = None,
                    hint_after: float | None = None) -> T:
    """Wait for the people's change (``changed()`` returns it, else None): the scenario's scripted answer
    as a hint GAMEDAY_LIVE_HINT_AFTER seconds after ``hint_from`` (default: now), RehearsalFailed once
    GAMEDAY_LIVE_GIVE_UP seconds passed; a dead harness part ends the wait.  ``on_wait(elapsed)`` runs
    between reads (a dashboard's refresh)."""
    give_up = settings.get_float("live-give-up") if give_up is None else give_up
    hint_after = settings.get_float("live-hint-after") if hint_after is None else hint_after
    began = time.time()
    hint_from = began if hint_from is None else hint_from
    hinted = False
    while (found := changed()) is None:
        raise_if_a_part_died("the people on call to act")
        now = time.time()
        if not hinted and now - hint_from >= hint_after:
            hinted = True
            say(f"HINT: the scenario's scripted answer is: {scripted}")
            if journal is not None:
                journal.event("live-hint", f"hint given after {now - hint_from:.0f} s: {scripted}")
        if now - began >= give_up:
            raise RehearsalFailed(f"nobody rolled back within {give_up:g} s of being handed the incident (live game "
                                  "day)", fix="act sooner, or raise GAMEDAY_LIVE_GIVE_UP")
        if on_wait is not None:
            on_wait(now - hint_from)
        if poll:
            time.sleep(poll)
    return found


def say_to_people(line: str) -> None:
    """One line to the people on call, on the terminal the run started from."""
    from rich.console import Console

    from gameday.console import live_console

    console = live_console or Console(file=sys.__stdout__, soft_wrap=True, highlight=False)
    console.print(line, markup=False, highlight=False)
    with contextlib.suppress(Exception):
        console.file.flush()


@dataclass(frozen=True)
class Change:
    """One change the people made: when the API server told the watch, to what, and what."""

    at: float
    kind: str  # "deployment" | "service" | "virtualservice" | "configmap" (the feature flags)
    namespace: str
    name: str
    what: str


def _image(deployment: dict[str, Any]) -> str:
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return ", ".join(str(c.get("image")) for c in containers)


def _weights(vs: dict[str, Any]) -> list[str]:
    return [f"{(r.get('destination') or {}).get('host')} {r.get('weight', '-')}"
            for h in (vs.get("spec") or {}).get("http") or [] for r in h.get("route") or []]


def _describe(kind: str, before: dict[str, Any], after: dict[str, Any] | None) -> str:
    if after is None:
        return "deleted"
    if kind == "virtualservice":
        return f"routes {', '.join(_weights(before))} -> {', '.join(_weights(after))}"
    if kind == "configmap":
        old, new = before.get("data") or {}, after.get("data") or {}
        return "flags " + ", ".join(f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted({*old, *new})
                                    if old.get(k) != new.get(k))
    if kind == "service":
        return (f"selector {before.get('spec', {}).get('selector')} -> {after.get('spec', {}).get('selector')}")
    said = []
    if _image(before) != _image(after):
        said.append(f"image {_image(before)} -> {_image(after)}")
    for key in ("replicas", "paused"):
        old, new = (before.get("spec") or {}).get(key), (after.get("spec") or {}).get(key)
        if old != new:
            said.append(f"{key} {old} -> {new}")
    generation = f"generation {before['metadata'].get('generation')} -> {after['metadata'].get('generation')}"
    return "; ".join([*said, generation]) if said else f"spec changed ({generation})"


def _changed(kind: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    if kind == "virtualservice":
        return (before.get("spec") or {}).get("http") != (after.get("spec") or {}).get("http")
    if kind == "configmap":
        return (before.get("data") or {}) != (after.get("data") or {})
    if kind == "service":
        return (before.get("spec") or {}).get("selector") != (after.get("spec") or {}).get("selector")
    return int(after["metadata"].get("generation") or 0) > int(before["metadata"].get("generation") or 0)


@dataclass
class LiveOnCall:
    """Hands the on-call part of a scenario to the people and measures what they do."""

    rehearsal: Any
    give_up_s: float = field(default_factory=lambda: settings.get_float("live-give-up"))
    hint_after_s: float = field(default_factory=lambda: settings.get_float("live-hint-after"))
    changes: list[Change] = field(default_factory=list)
    _known: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    _informers: list[Any] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _handed_over: bool = False

    # -- from the bad deploy on -----------------------------------------------------------------
    def watch(self) -> None:
        """Start watching every namespace of the project's services (call right after the bad deploy:
        what is there now is the baseline, so gameday's own change is never taken for the people's)."""
        if self._informers:
            return
        from kubernetes import client

        from gameday.cluster.kubelet_watch import Informer, wait_all_synced

        api = self.rehearsal.cluster.api_client()
        apps, core, custom = client.AppsV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)
        services = {name: self.rehearsal.project.service(name) for name in self.rehearsal.deployed}
        weighted = {services[name].namespace for name, deployed in self.rehearsal.deployed.items() if deployed.weighted}
        flagged = [services[name] for name, deployed in self.rehearsal.deployed.items() if deployed.flags]
        for namespace in sorted({s.namespace for s in self.rehearsal.project.services.values()}):
            lists: list[tuple[str, Any]] = [("deployment", functools.partial(apps.list_namespaced_deployment, namespace)),
                                            ("service", functools.partial(core.list_namespaced_service, namespace))]
            if namespace in weighted:  # canary weights are the people's to drain
                lists.append(("virtualservice", functools.partial(custom.list_namespaced_custom_object,
                                                                  "networking.istio.io", "v1", namespace,
                                                                  "virtualservices")))
            for service in (s for s in flagged if s.namespace == namespace):  # the kill switch is theirs too
                lists.append(("configmap", functools.partial(core.list_namespaced_config_map, namespace,
                              field_selector=f"metadata.name={self.rehearsal.flags_configmap(service)}")))
            for kind, list_fn in lists:
                handler = functools.partial(self._on_event, kind, namespace)
                self._informers.append(Informer(f"live-{kind}s-{namespace}", list_fn, handler).start())
        if not wait_all_synced(self._informers, 30):
            raise RehearsalFailed("live mode could not list the service's Deployments and Services within 30 s",
                                  fix="check that the cluster's API server answers")

    def _on_event(self, kind: str, namespace: str, event: str, obj: dict[str, Any]) -> None:
        at = time.time()
        key = (kind, namespace, obj["metadata"]["name"])
        with self._lock:
            before = self._known.get(key)
            self._known[key] = obj
            if event == "DELETED":
                self._known.pop(key, None)
                if before is not None and kind == "deployment":  # e.g. a canary removed
                    self.changes.append(Change(at, kind, namespace, key[2], _describe(kind, before, None)))
                    self._lock.notify_all()
            elif event == "MODIFIED" and before is not None and _changed(kind, before, obj):
                self.changes.append(Change(at, kind, namespace, key[2], _describe(kind, before, obj)))
                self._lock.notify_all()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()
        self._informers = []

    # -- where the scenario has the on-call act -------------------------------------------------
    def take_over(self, scripted: str) -> None:
        """The first on-call step waits for the people; later ones are theirs too (not run)."""
        journal = self.rehearsal.journal
        if self._handed_over:
            if journal is not None:
                journal.event("live", f"left to the people: {scripted}")
            return
        self._handed_over = True
        self.rehearsal.note_rollout_state()  # what a kill switch must leave as it is
        first = self._wait_for_people(scripted)
        timeline = self.rehearsal.timeline
        timeline.marks["acted"] = first.at
        timeline.decided_by = ("the people on call (live): the alarm to their first change to the cluster, "
                               "stamped when the API server's watch reported it")
        for change in self.changes:
            if change.kind == "deployment":
                self.rehearsal.acted_on(change.namespace, change.name)
        if journal is not None:
            for change in self.changes:
                journal.event("live-action", f"the people changed {change.kind}/{change.name}: {change.what}",
                              at=change.at, namespace=change.namespace)

    def _wait_for_people(self, scripted: str) -> Change:
        r = self.rehearsal
        t0 = r.timeline.marks.get("t0", time.time())
        names = ", ".join(f"deployment/{s.deployment} in namespace {s.namespace}"
                          for s in r.project.services.values())
        dashboard = _Dashboard(r)
        dashboard.say(f"LIVE: the incident is yours. export KUBECONFIG={r.cluster.kubeconfig}  ({names}). "
                      f"gameday will not act; roll back however your runbook says. Giving up after "
                      f"{self.give_up_s:g} s.")
        def first_change() -> Change | None:
            with self._lock:
                self._lock.wait_for(lambda: bool(self.changes), timeout=0.2)
                return self.changes[0] if self.changes else None

        with dashboard:
            first = wait_for_people(first_change, scripted=scripted, say=dashboard.say, journal=r.journal,
                                    hint_from=t0, poll=0, on_wait=dashboard.refresh, give_up=self.give_up_s,
                                    hint_after=self.hint_after_s)
        dashboard.say(f"ACTED at T+{first.at - t0:.2f} s: {first.kind}/{first.name}: {first.what}")
        return first


class _Dashboard:
    """Golden signals, the alarm and the elapsed time while the people work (rich Live on a
    terminal; otherwise a plain line every 5 s)."""

    def __init__(self, rehearsal: Any) -> None:
        from rich.console import Console

        from gameday.console import live_console

        self.r = rehearsal
        self.console = live_console or Console(file=sys.__stdout__, soft_wrap=True, highlight=False)
        self.live: Any = None
        self._last_line = 0.0

    def __enter__(self) -> _Dashboard:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._panel(0.0), console=self.console, refresh_per_second=2, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)
        with contextlib.suppress(Exception):
            self.console.file.flush()

    def _status(self, elapsed: float) -> str:
        marks = self.r.timeline.marks
        alarm = (f"alarm fired at T+{marks['detected'] - marks['t0']:.1f} s" if "detected" in marks and "t0" in marks
                 else "alarm not fired")
        signals = self.r.load.signals(10).summary() if self.r.load is not None else "no traffic"
        return f"T+{elapsed:.0f} s · {alarm} · last 10 s: {signals}"

    def _panel(self, elapsed: float) -> Any:
        from rich.panel import Panel

        return Panel(self._status(elapsed), title="live game day: waiting for the people on call")

    def refresh(self, elapsed: float) -> None:
        if self.live is not None:
            self.live.update(self._panel(elapsed))
        elif time.monotonic() - self._last_line >= 5:
            self._last_line = time.monotonic()
            self.say(self._status(elapsed))
