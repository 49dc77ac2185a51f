"""Automatic rollback: declared rules, watched from the bad deploy on; the first to hold rolls back.

What Argo Rollouts' analysis or Flagger do for a team, rehearsed on its own service: every
``EVALUATION_INTERVAL_S`` the rules are evaluated on the service's own traffic, and the first
that holds makes gameday take the declared action (undo the rollout, switch the Service back
to a track, drain the canary, turn a feature flag off) exactly as the on-call would.
"detected" is the first instant the rule held, as the rule itself is evaluated (its windows
included), placed between two evaluations from the requests themselves to 10 ms; "acted" is
when the action was issued.  So decide is the automation's own delay: its evaluation interval,
the evaluation and the API call, reported as such.  The time the rule's windows take to fill
with a marginal error rate is detection, as an alert's evaluation window is.

Rules are a table, one per row, in the words runbooks use::

    | rule              | threshold    | for   |
    | error rate above  | 5 %          | 2 min |
    | p95 latency above | 2 × baseline | 5 min |
    | p99 latency above | 800 ms       | 1 min |
    | health checks failing above | 50 % | 1 min |

A health-check rule reads each pod's readiness behind the Service, sampled every 0.5 s
(:mod:`gameday.load.health`), not the traffic: it sees a release whose pods never become
healthy, which the traffic does not show while the previous pods keep serving.

Actions: ``undoing the rollout``, ``switching back to the blue track``, ``draining the
canary``, ``turning feature flag "new-pricing" off``; on ECS ``rolling back to the previous
task definition`` (update-service to it, as the deployment circuit breaker's rollback does).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gameday import durations
from gameday.errors import ConfigError, RehearsalFailed
from gameday.lifecycle import raise_if_a_part_died
from gameday.load.triggers import ErrorRateAbove, HealthChecksFailingAbove, LatencyAbove, Trigger

EVALUATION_INTERVAL_S = 0.5  # how often the rules are evaluated, as an analysis run's interval
HEADER = ["rule", "threshold", "for"]
EXAMPLE = "e.g. | rule | threshold | for | then | error rate above | 5 % | 2 min |"
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_FACTOR = re.compile(r"(\d+(?:\.\d+)?)\s*[×x]\s*baseline")
_MS = re.compile(r"(\d+(?:\.\d+)?)\s*ms")
_LATENCY = re.compile(r"p(50|90|95|99)\s+latency\s+above")


@dataclass(frozen=True)
class Rule:
    """One row of the table: its words and the trigger they make."""

    text: str
    trigger: Trigger


@dataclass(frozen=True)
class Action:
    """What the automation does when a rule holds, and how it is said."""

    text: str
    run: Callable[[Any], None]  # (the KubernetesRehearsal, or the ECS rehearsal's traffic) -> None


def _seconds(text: str, where: str) -> float:
    try:
        return durations.seconds(text, positive=True)
    except ValueError as exc:
        said = "is not one" if str(exc) == "not a duration" else str(exc)
        raise ConfigError(f"{where}: duration {text!r} {said}", fix="write e.g. '2 min' or '30 s'") from None


def rules_from_table(rows: Sequence[Sequence[str]], where: str = "the rules table") -> list[Rule]:
    """``| rule | threshold | for |`` rows -> rules; ConfigError naming the row for anything else."""
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header[:3] != HEADER:
        raise ConfigError(f"{where} must start with the header row | rule | threshold | for |", fix=EXAMPLE)
    if len(rows) < 2:
        raise ConfigError(f"{where} has only its header, so nothing would be watched", fix=EXAMPLE)
    rules = []
    for number, row in enumerate(rows[1:], start=2):
        at = f"{where}, row {number}"
        name, threshold, held = (cell.strip() for cell in row[:3])
        seconds = _seconds(held, at)
        low = name.lower()
        if low in ("error rate above", "health checks failing above"):
            match = _PERCENT.fullmatch(threshold)
            if not match or not 0 <= float(match.group(1)) < 100:
                raise ConfigError(f"{at}: threshold {threshold!r} for {name!r} is not a percentage",
                                  fix="write e.g. '5 %'")
            kind = ErrorRateAbove if low == "error rate above" else HealthChecksFailingAbove
            trigger: Trigger = kind(threshold=float(match.group(1)) / 100, for_seconds=seconds)
        elif latency := _LATENCY.fullmatch(low):
            p = float(latency.group(1))
            factor, ms = _FACTOR.fullmatch(threshold.lower()), _MS.fullmatch(threshold.lower())
            if factor:
                trigger = LatencyAbove(p=p, factor=float(factor.group(1)), for_seconds=seconds)
            elif ms:
                trigger = LatencyAbove(p=p, above_ms=float(ms.group(1)), for_seconds=seconds)
            else:
                raise ConfigError(f"{at}: threshold {threshold!r} for {name!r} is neither 'K × baseline' nor 'N ms'",
                                  fix="write e.g. '2 × baseline' or '800 ms'")
        else:
            raise ConfigError(f"{at}: unknown rule {name!r}",
                              fix="use 'error rate above', 'p50/p90/p95/p99 latency above' or "
                                  "'health checks failing above'")
        rules.append(Rule(f"{name} {threshold} for {held}", trigger))
    return rules


def action_from_text(text: str) -> Action:
    """The action's words -> what the automation does (the same calls the on-call's steps make)."""
    said = text.strip()
    if said == "undoing the rollout":
        return Action("kubectl rollout undo", lambda r: r.undo.__wrapped__(r, None))
    if track := re.fullmatch(r"switching back to the (\w[\w-]*) track", said):
        name = track.group(1)
        return Action(f"the Service's selector back to {name}", lambda r: r.switch_back.__wrapped__(r, None, name))
    if said == "draining the canary":
        return Action("the canary's weight to 0 %", lambda r: r.set_canary_weight.__wrapped__(r, None, 0))
    if flag := re.fullmatch(r'turning feature flag "([^"]+)" off', said):
        name = flag.group(1)
        return Action(f"feature flag {name} off", lambda r: r.kill_switch.__wrapped__(r, None, name))
    if said == "rolling back to the previous task definition":  # ECS, as its deployment circuit breaker does
        return Action("ecs update-service to the previous task definition", lambda r: r.roll_back_to_previous())
    raise ConfigError(f"automatic rollback by {said!r} is not an action gameday knows",
                      fix='use: undoing the rollout, switching back to the blue track, draining the canary, '
                          'turning feature flag "NAME" off, rolling back to the previous task definition (ECS)')


@dataclass
class AutomaticRollback:
    """Armed by a Given step; fires within the Then step that waits for it."""

    rules: list[Rule]
    action: Action
    interval: float = EVALUATION_INTERVAL_S

    def prepared(self, r: Any) -> list[tuple[Rule, Trigger]]:
        """Each rule scaled as the run's alarms are, a latency rule given the captured baseline."""
        from gameday.rehearsals.kubernetes import baseline_ms

        out = []
        for rule in self.rules:
            trigger = rule.trigger
            if isinstance(trigger, LatencyAbove) and trigger.above_ms is None and trigger.baseline_ms is None:
                trigger = trigger.with_baseline_value(baseline_ms(r.require_baseline(), trigger.p))
            out.append((rule, trigger.scaled(r.timeline.scale) if r.timeline.scale != 1 else trigger))
        return out

    def arm(self, r: Any) -> None:
        """Start what the rules read besides the traffic (the health checks), before the bad deploy."""
        if any(rule.trigger.source == "health checks" for rule in self.rules):
            r.health_checks()

    def fire_within(self, r: Any, timeout: float) -> Rule:
        """Evaluate every ``interval`` from the bad deploy on; the first rule to hold triggers the action."""
        if r.live is not None:
            raise ConfigError("an automatic rollback is the system's own, not the people's",
                              fix="run this scenario without --live")
        t0 = r.timeline.marks.get("t0")
        if t0 is None:
            raise ConfigError("the automatic rollback watches from the bad deploy, and there was none yet",
                              fix="roll out the bad release (or switch the Service) before this step")
        load = r.require_load()
        rules = self.prepared(r)
        self.arm(r)
        sources = {"traffic": load.records, "health checks": lambda since: r.health_checks().records(since=since)}
        for rule, trigger in rules:
            r.watched.setdefault(f"automatic: {rule.text}", trigger)
        deadline = time.monotonic() + timeout
        checked = t0  # the last evaluation at which no rule held
        while True:
            raise_if_a_part_died("the automatic rollback's rules")
            now = time.time()
            for rule, trigger in rules:
                records = sources[trigger.source](t0)
                if trigger.evaluate(records, now):
                    held = trigger.first_held(records, checked, now)
                    r.timeline.mark("detected", held)
                    r.timeline.decided_by = (f"the automatic rollback's own delay: rules evaluated every "
                                             f"{self.interval:g} s, then {self.action.text}")
                    r._event("automatic-rollback", f"rule {rule.text} held ({trigger.describe()}: "
                             f"{trigger.observe(records, now)}): {self.action.text}",
                             rule=rule.text, held_at=round(held, 3), evaluated_at=round(now, 3))
                    self.action.run(r)
                    return rule
            if time.monotonic() >= deadline:
                last = "; ".join(f"{rule.text}: {trigger.observe(sources[trigger.source](t0), now)}"
                                 for rule, trigger in rules)
                raise RehearsalFailed(f"no rule of the automatic rollback held within {timeout:g}s ({last}), "
                                      "so nothing rolled back")
            checked = now
            time.sleep(self.interval)
