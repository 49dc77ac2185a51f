"""The runbook's success criteria after a rollback, held together for a while and each measured.

A table, one criterion per row, in the words a runbook's validation section uses::

    | criterion   | bound     |
    | error rate  | < 1 %     |
    | p99 latency | < 2000 ms |
    | replicas    | match     |
    | restarts    | 0         |

The traffic criteria (error rate, pNN latency) must hold at every check across the whole
period at once (one rule, like an alert's ``for:``); the cluster criteria are read at its end:
every Deployment the scenario deployed has its desired replicas ready, and its pods restarted at
most N times.  Each criterion is a measurement against its bound, so a miss says by how much.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gameday.errors import ConfigError, RehearsalFailed

HEADER = ["criterion", "bound"]
EXAMPLE = "e.g. | criterion | bound | then | error rate | < 1 % |"
_PERCENT = re.compile(r"<\s*(\d+(?:\.\d+)?)\s*%")
_MS = re.compile(r"<\s*(\d+(?:\.\d+)?)\s*ms")
_LATENCY = re.compile(r"p(50|90|95|99) latency")


@dataclass(frozen=True)
class Criteria:
    error_rate_below: float | None = None  # percent
    latency_below: tuple[float, float] | None = None  # (p, ms)
    replicas_match: bool = False
    max_restarts: int | None = None


def criteria_from_table(rows: Sequence[Sequence[str]], where: str = "the criteria table") -> Criteria:
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header[:2] != HEADER:
        raise ConfigError(f"{where} must start with the header row | criterion | bound |", fix=EXAMPLE)
    if len(rows) < 2:
        raise ConfigError(f"{where} has only its header, so nothing would be checked", fix=EXAMPLE)
    found: dict[str, Any] = {}
    for number, row in enumerate(rows[1:], start=2):
        at = f"{where}, row {number}"
        name, bound = (cell.strip() for cell in row[:2])
        low = name.lower()
        value: Any
        if low == "error rate" and (match := _PERCENT.fullmatch(bound)):
            key, value = "error_rate_below", float(match.group(1))
        elif (latency := _LATENCY.fullmatch(low)) and (match := _MS.fullmatch(bound)):
            key, value = "latency_below", (float(latency.group(1)), float(match.group(1)))
        elif low == "replicas" and bound.lower() == "match":
            key, value = "replicas_match", True
        elif low == "restarts" and bound.isdigit():
            key, value = "max_restarts", int(bound)
        else:
            raise ConfigError(f"{at}: {name!r} with bound {bound!r} is not a criterion gameday checks",
                              fix="use error rate | < N %, pNN latency | < N ms, replicas | match, restarts | N")
        if key in found:
            raise ConfigError(f"{at}: {name!r} is given twice", fix="keep one row per criterion")
        found[key] = value
    return Criteria(**found)


def hold(r: Any, criteria: Criteria, seconds: float) -> None:
    """Every traffic criterion held together for ``seconds`` (10 s allowed to settle), then the cluster's."""
    from gameday.load import AllOf, ErrorRateBelow, LatencyBelow
    from gameday.load.signals import error_rate, latency
    from gameday.load.triggers import Trigger, TriggerTimeout
    from gameday.rehearsals import kubernetes_checks as check

    r.ensure_done()
    held_for = seconds / r.timeline.scale
    rules: list[Trigger] = []
    window = min(5.0, max(held_for, 1.0))
    if criteria.error_rate_below is not None:
        rules.append(ErrorRateBelow(threshold=criteria.error_rate_below / 100, for_seconds=held_for,
                                    window_seconds=window))
    if criteria.latency_below is not None:
        p, ms = criteria.latency_below
        rules.append(LatencyBelow(p=p, below_ms=ms, for_seconds=held_for, window_seconds=window))
    missed = []
    if rules:
        load = r.require_load()
        try:
            at = AllOf(tuple(rules)).wait(load, held_for + 10, since=r.timeline.marks.get("done"), journal=r.journal)
        except TriggerTimeout as exc:
            missed.append(exc.message)
            at = None
        sample = load.records(since=(at or time.time()) - held_for)
        if criteria.error_rate_below is not None:
            rate = (error_rate(sample) or 0.0) * 100
            _measure(r, f"error rate over {held_for:g} s", rate, "%", criteria.error_rate_below)
        if criteria.latency_below is not None:
            p, ms = criteria.latency_below
            value = latency(sample, p)
            if value is not None:
                _measure(r, f"p{p:g} latency over {held_for:g} s", value, "ms", ms)
    for name in _deployments(r):
        if criteria.replicas_match:
            try:
                check.require_ready(r, name)
            except RehearsalFailed as exc:
                missed.append(exc.message)
        if criteria.max_restarts is not None:
            _, _, pods = check.current_pods(r, name)
            restarts = sum(int(c.get("restartCount", 0)) for p in pods
                           for c in (p.get("status") or {}).get("containerStatuses") or [])
            _measure(r, f"restarts of deployment/{name}", restarts, "restarts", criteria.max_restarts)
            if restarts > criteria.max_restarts:
                missed.append(f"deployment/{name} restarted {restarts} times, {restarts - criteria.max_restarts} "
                              f"more than the {criteria.max_restarts} allowed")
    if missed:
        raise RehearsalFailed("the runbook's success criteria were missed: " + "; ".join(missed))


def _measure(r: Any, name: str, value: float, unit: str, bound: float) -> None:
    if r.journal is not None:
        r.journal.measure(name, value, unit, target=bound, detail="a success criterion of the runbook")


def _deployments(r: Any) -> list[str]:
    """The Deployments the scenario has running (a deleted canary has none left to check)."""
    names = []
    for name, deployed in r.deployed.items():
        service = r.project.service(name)
        names += [d for d in deployed.deployments if r.exists(service, f"deployment/{d}")]
    return names
