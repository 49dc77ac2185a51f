"""Backtest alert rules on the traffic a rehearsal recorded: would each have fired, when, how often falsely.

A rule (a Trigger) is replayed over the recorded requests as an evaluator polling every
``step`` seconds would have seen them.  On the incident (from the bad deploy on) the result is
when it would have fired; on the healthy stretches (before the bad deploy, and after
recovery) every separate episode in which it held is a false alarm.  The same replay on a
thinned copy of the traffic (one request kept in N, so a window holds only a few requests)
says how the rule behaves for a service with little traffic: blind (it never has enough
requests to judge) or noisy (a few slow requests make a p95).

    rows = backtest([("error rate above 5 % for 4 s", rule)], records, t0=t0, healthy=[(start, t0)])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gameday.load.records import RequestRecord
from gameday.load.signals import window
from gameday.load.triggers import Trigger

STEP_S = 0.5  # the replayed evaluator's polling interval
LOW_TRAFFIC_PER_WINDOW = 8  # requests per evaluation window the thinned traffic is cut down to


@dataclass(frozen=True)
class BacktestRow:
    rule: str
    fires_at: float | None  # seconds after the bad deploy the rule would have fired; None: never
    false_alarms: int  # separate episodes it held on the healthy traffic
    healthy_s: float  # how much healthy traffic that was judged on
    low_traffic_one_in: int  # the thinned replay kept one request in this many
    low_traffic_fires_at: float | None
    low_traffic_false_alarms: int
    low_traffic_per_window: float  # median requests per window in the thinned healthy traffic

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _window_of(trigger: Trigger) -> float:
    rules = getattr(trigger, "rules", None)
    if rules:
        return max(_window_of(r) for r in rules)
    return float(getattr(trigger, "window_seconds", 5.0))


def holding_times(trigger: Trigger, records: Sequence[RequestRecord], start: float, end: float,
                  step: float = STEP_S) -> list[float]:
    """The polling moments in (start, end] at which the rule held, judged on ``records`` only."""
    times = []
    count = max(0, math.floor((end - start) / step))
    for i in range(1, count + 1):
        now = start + i * step
        if trigger.evaluate(records, now):
            times.append(now)
    return times


def episodes(times: Sequence[float], step: float = STEP_S) -> int:
    """Separate stretches of consecutive holding moments (one alarm each)."""
    count, last = 0, None
    for at in times:
        if last is None or at - last > step * 1.5:
            count += 1
        last = at
    return count


def thinned(records: Sequence[RequestRecord], one_in: int) -> list[RequestRecord]:
    return list(records[::one_in]) if one_in > 1 else list(records)


def _per_window(records: Sequence[RequestRecord], seconds: float, stretches: Sequence[tuple[float, float]]) -> float:
    """Requests in an evaluation window of ``seconds``, on average over the stretches."""
    total = sum(b - a for a, b in stretches)
    if total <= 0:
        return 0.0
    return round(sum(len(window(records, a, b)) for a, b in stretches) / total * seconds, 1)


def backtest(rules: Sequence[tuple[str, Trigger]], records: Sequence[RequestRecord], *, t0: float,
             healthy: Sequence[tuple[float, float]], end: float | None = None,
             step: float = STEP_S) -> list[BacktestRow]:
    """Each rule replayed on the incident (t0 .. end) and on the healthy stretches, at full and low traffic."""
    records = sorted(records, key=lambda r: r.ts)
    if not records:
        return []
    end = records[-1].ts if end is None else end
    stretches = [(max(a, records[0].ts), min(b, end)) for a, b in healthy if min(b, end) - max(a, records[0].ts) > step]
    healthy_s = sum(b - a for a, b in stretches)
    rows = []
    for text, trigger in rules:
        seconds = _window_of(trigger)
        judged = stretches or [(records[0].ts, end)]
        full = _per_window(records, seconds, judged)
        one_in = max(1, round(full / LOW_TRAFFIC_PER_WINDOW))
        results = []
        for sample in (records, thinned(records, one_in)):
            incident = [r for r in sample if r.ts > t0]
            fired = holding_times(trigger, incident, t0, end, step)
            false = sum(episodes(holding_times(trigger, [r for r in sample if a < r.ts <= b], a, b, step), step)
                        for a, b in stretches)
            results.append((round(fired[0] - t0, 2) if fired else None, false))
        rows.append(BacktestRow(text, results[0][0], results[0][1], round(healthy_s, 1), one_in, results[1][0],
                                results[1][1], _per_window(thinned(records, one_in), seconds, judged)))
    return rows
