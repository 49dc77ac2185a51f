"""What every rehearsal under load records and waits for, whatever runs the service (Kubernetes, ECS).

``record_traffic`` puts the golden signals of the scenario's traffic in the journal, with the
timeline's marks, and the backtest of the rules it watched; ``wait_recovered`` is recovery
as the runbooks define it (errors at most 1 % and every request on the stable release, held),
back-dated to when it began, computed from the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gameday.journal import Journal
from gameday.load import AllOf, ErrorRateAtMost, VersionShare
from gameday.load.backtest import STEP_S as BACKTEST_STEP_S
from gameday.load.backtest import backtest
from gameday.load.records import RequestRecord
from gameday.load.signals import signal_series
from gameday.load.triggers import RecordSource, Trigger

RECOVERY_SETTLE_S = 1.0  # after recovery, the traffic counts as healthy again for the backtest
RECOVERY_HOLD_S = 3.0
RECOVERY_ERROR_RATE = 0.01


def record_traffic(journal: Journal, records: list[RequestRecord], marks: dict[str, float],
                   watched: dict[str, Trigger], *, stable: str | None, recovery: str | None,
                   health_checks: Sequence[RequestRecord] = ()) -> None:
    """Golden signals over the whole scenario with the timeline's marks, and the backtest of its rules."""
    if not records:
        return
    start, end = records[0].ts, records[-1].ts
    series = signal_series(records, start=start, end=end, step=max(0.5, (end - start) / 120))
    _record_backtest(journal, records, marks, watched, health_checks)
    journal.event("signals", f"golden signals over {end - start:.0f} s of traffic ({len(series)} points)",
                  series=series, marks={name: round(at - start, 3) for name, at in marks.items()},
                  origin=round(start, 3), stable=stable, **({"recovery": recovery} if recovery else {}))


def _record_backtest(journal: Journal, records: list[RequestRecord], marks: dict[str, float],
                     watched: dict[str, Trigger], checks: Sequence[RequestRecord]) -> None:
    """Each rule the scenario watched, replayed on its traffic: when it would fire, false alarms when healthy."""
    t0 = marks.get("t0")
    if not watched or t0 is None:
        return
    end = records[-1].ts
    healthy = [(records[0].ts, t0)]
    if "recovered" in marks:
        healthy.append((marks["recovered"] + RECOVERY_SETTLE_S, end))
    rows = [row for source, recorded in (("traffic", records), ("health checks", checks))
            for row in backtest([(text, rule) for text, rule in watched.items() if rule.source == source],
                                list(recorded), t0=t0, healthy=healthy, end=end)]
    journal.event("backtest", f"{len(rows)} rules replayed on {len(records)} recorded requests"
                  + (f" and {len(checks)} health checks" if checks else ""),
                  rows=[row.to_dict() for row in rows], step_s=BACKTEST_STEP_S)


def wait_recovered(load: RecordSource, release: str, timeout: float, *, done: float | None, scale: float = 1.0,
                   journal: Journal | None = None) -> float:
    """Error rate at most 1 % and 100 % of traffic on ``release``, held a few seconds, from ``done`` on;
    returns when the healthy stretch began (the first good request sent after the last bad one), not
    when it had lasted long enough, nor when a poll noticed."""
    hold = RECOVERY_HOLD_S / scale
    rule = AllOf((ErrorRateAtMost(threshold=RECOVERY_ERROR_RATE, for_seconds=hold, window_seconds=2),
                  VersionShare(version=release, at_least=1.0, for_seconds=hold, window_seconds=2)))
    confirmed = rule.wait(load, timeout, since=done, journal=journal)
    return max(rule.moment(load.records(since=None if done is None else done - 1), done, confirmed),
               done if done is not None else -1.0)


def detected_at(rule: Trigger, load: Any, timeout: float, *, t0: float | None, journal: Journal | None) -> float:
    """Wait for the alarm ``rule`` from ``t0``; when it really held, from the requests themselves."""
    fired = rule.wait(load, timeout, since=t0, journal=journal)
    return rule.moment(load.records(since=None if t0 is None else t0 - 1), t0, fired)
