"""Trigger rules as data: when a condition has held long enough, the moment is a timing.

A rule such as ``ErrorRateAbove(threshold=0.05, for_seconds=10)`` reads "the error rate
over a ``window_seconds`` window stayed above 5 % at every check across the last 10 s",
like a Prometheus alert with ``for: 10s``.  ``wait(load, timeout)`` polls the records
and returns the epoch time the rule first held: T_detect when waiting for the breakage,
T_recover when waiting for the signals to come back (ARCHITECTURE, "Timing model").

Rules are scalable: ``rule.scaled(12)`` turns a 2-minute rule into a 10-second one for
rehearsal, and the report states the scale.  Scenarios give rules as data::

    {"error-rate-above": {"threshold": 0.05, "for_seconds": 120, "window_seconds": 30}}

The recovery side reads the same way, each "held for ``for_seconds``"::

    {"error-rate-below": {"threshold": 0.01, "for_seconds": 30}}        # strictly below 1 %
    {"latency-below": {"p": 95, "below_ms": 300, "for_seconds": 30}}    # p95 strictly under 300 ms
    {"latency-at-most": {"p": 95, "factor": 2, "for_seconds": 30}}      # p95 within 2 x the baseline's
    {"version-share": {"version": "3.1.0", "at_least": 0.9, "for_seconds": 30}}  # 3.1.0 serves >= 90 %

A rule against the baseline gets its figure with ``rule.with_baseline(baseline)`` (a
captured gameday.load.Baseline, or records) or ``rule.with_baseline_value(ms)``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Journal
from gameday.lifecycle import raise_if_a_part_died
from gameday.load.baseline import Baseline
from gameday.load.records import RequestRecord
from gameday.load.signals import error_rate, latency, version_share, window

MAX_CHECKS = 41  # checkpoints across for_seconds: bounds the cost of one evaluation
FIRST_HELD_RESOLUTION_S = 0.01  # how finely first_held() places the moment between two evaluations


class RecordSource(Protocol):
    def records(self, since: float | None = None) -> list[RequestRecord]: ...


class TriggerTimeout(RehearsalFailed):
    """The condition never held in time: the alert would not have fired (or recovery not come)."""


class Trigger:
    """Common part of every rule: waiting, scaling, describing."""

    source: ClassVar[str] = "traffic"  # what its records are: the service's requests, or "health checks"

    def evaluate(self, records: Sequence[RequestRecord], now: float) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def observe(self, records: Sequence[RequestRecord], now: float) -> str:
        """The current value of what the rule watches, for messages and journals."""
        raise NotImplementedError

    def lookback(self) -> float:
        """How far back in time evaluate() reads."""
        raise NotImplementedError

    def scaled(self, factor: float) -> Trigger:
        raise NotImplementedError

    def moment(self, records: Sequence[RequestRecord], since: float | None, held: float) -> float:
        """When the rule really came to hold, computed from the records (a poll noticed at ``held``).

        Alarm rules: the first request of the bad stretch that made it fire, plus ``for_seconds``
        (an ideal alarm with this rule); recovery rules: the first good request sent after the
        last bad one.  Requests are placed at the moment they were sent (answer time minus
        latency), so neither the poll cadence nor the window's dilution by older requests adds
        to the figure."""
        return held

    def first_held(self, records: Sequence[RequestRecord], after: float, until: float,
                   resolution: float = FIRST_HELD_RESOLUTION_S) -> float:
        """The first instant in (``after``, ``until``] at which the rule holds on ``records``, to
        ``resolution``: when an evaluation that found it holding at ``until`` could first have
        found it so (``after``: the last evaluation that found it not holding).  Unlike
        :meth:`moment`, this is the rule as evaluated, its windows' dilution included: a rule that
        acts on its own evaluation (an automatic rollback) holds here, not before."""
        steps = max(1, math.ceil((until - after) / resolution))
        for i in range(1, steps):
            at = after + (until - after) * i / steps
            if self.evaluate(records, at):
                return at
        return until

    def wait(
        self,
        load: RecordSource,
        timeout: float,
        *,
        since: float | None = None,
        interval: float = 0.1,
        journal: Journal | None = None,
    ) -> float:
        """Poll ``load`` until the rule holds; return that moment (epoch s, within ``interval``).

        Only records at or after ``since`` count (e.g. the time of the bad deploy).
        Raises TriggerTimeout after ``timeout`` seconds, with the last observed value.
        """
        deadline = time.monotonic() + timeout
        while True:
            # a dead part (the proxy, locust, a kubelet) makes the traffic say nothing about the service
            raise_if_a_part_died(self.describe())
            now = time.time()
            start = now - self.lookback() - 1
            records = load.records(since=start if since is None else max(since, start))
            if self.evaluate(records, now):
                if journal is not None:
                    journal.event("trigger", f"{self.describe()}: held", at=now, observed=self.observe(records, now))
                return now
            if time.monotonic() >= deadline:
                raise TriggerTimeout(
                    f"{self.describe()} did not hold within {timeout:g}s (last: {self.observe(records, now)})",
                    fix="check the load reaches the service and the rule's threshold and window",
                )
            if not getattr(load, "running", True):
                raise TriggerTimeout(
                    f"{self.describe()}: the load generator stopped before the rule held "
                    f"(last: {self.observe(records, now)})",
                    fix="give the load generator a max_seconds longer than the scenario",
                )
            time.sleep(interval)


@dataclass(frozen=True, kw_only=True)
class _Sustained(Trigger):
    """A condition on a window of records that must hold at every check for ``for_seconds``."""

    for_seconds: float = 0.0
    window_seconds: float = 5.0
    min_requests: int = 5  # fewer requests in a window prove nothing either way

    def __post_init__(self) -> None:
        if self.for_seconds < 0 or self.window_seconds <= 0 or self.min_requests < 1:
            raise ConfigError(f"{type(self).__name__}: for_seconds >= 0, window_seconds > 0, min_requests >= 1 "
                              f"(got {self.for_seconds}, {self.window_seconds}, {self.min_requests})",
                              fix="fix the trigger rule")

    alarm: ClassVar[bool] = False  # True: fires on bad requests; False: holds while they are absent
    # True: a bad request counts as the stretch's start only where the rule holds on the requests
    # from it on (a latency tail: one slow healthy request is no onset); error rules count every one
    tails: ClassVar[bool] = False

    def holds(self, sample: Sequence[RequestRecord]) -> bool:
        raise NotImplementedError

    def bad(self, record: RequestRecord) -> bool:
        """The request counts towards the alarm (or against recovery)."""
        raise NotImplementedError

    def value(self, sample: Sequence[RequestRecord]) -> str:
        raise NotImplementedError

    def moment(self, records: Sequence[RequestRecord], since: float | None, held: float) -> float:
        floor = since if since is not None else -math.inf
        kept = sorted((r for r in records if floor <= r.sent <= held), key=lambda r: r.sent)
        timed = [(r.sent, self.bad(r)) for r in kept]
        if self.alarm:
            bad = sorted({t for t, is_bad in timed if is_bad})  # distinct moments: checks share theirs
            if not bad:
                return held
            sent = [t for t, _ in timed]
            start = bad[-1]
            for earlier in reversed(bad[:-1]):  # back through the stretch: no gap a window long
                if start - earlier > self.window_seconds:
                    break
                if self.tails and not self.holds(kept[bisect.bisect_left(sent, earlier):bisect.bisect_left(sent, start)]):
                    break  # a stray slow request before the stretch, not its start
                start = earlier
            return min(held, start + self.for_seconds)
        last_bad = max((t for t, is_bad in timed if is_bad), default=None)
        if last_bad is None:  # nothing bad since ``since``: healthy from then on
            return since if since is not None else held
        return next((t for t, is_bad in timed if t > last_bad and not is_bad), held)

    def checkpoints(self, now: float) -> list[float]:
        if self.for_seconds == 0:
            return [now]
        step = max(self.window_seconds / 2, self.for_seconds / (MAX_CHECKS - 1))
        count = math.ceil(self.for_seconds / step)
        return [now - self.for_seconds + i * self.for_seconds / count for i in range(count + 1)]

    def evaluate(self, records: Sequence[RequestRecord], now: float) -> bool:
        # Newest checkpoint first: when the condition fails now, we learn it in one step.
        for at in reversed(self.checkpoints(now)):
            sample = window(records, at - self.window_seconds, at)
            if len(sample) < self.min_requests or not self.holds(sample):
                return False
        return True

    def observe(self, records: Sequence[RequestRecord], now: float) -> str:
        sample = window(records, now - self.window_seconds, now)
        return f"{self.value(sample)} over {len(sample)} requests in the last {self.window_seconds:g}s"

    def lookback(self) -> float:
        return self.for_seconds + self.window_seconds

    def scaled(self, factor: float) -> Trigger:
        if factor <= 0:
            raise ConfigError(f"time scale {factor} must be > 0", fix="e.g. 12 to rehearse 2 minutes in 10 s")
        return dataclasses.replace(self, for_seconds=self.for_seconds / factor,
                                   window_seconds=self.window_seconds / factor)

    def _held_for(self) -> str:
        return f" for {self.for_seconds:g}s" if self.for_seconds else ""


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value:.1%}"


@dataclass(frozen=True)
class ErrorRateAbove(_Sustained):
    threshold: float = 0.05
    alarm: ClassVar[bool] = True

    def bad(self, record: RequestRecord) -> bool:
        return bool(record.failed)

    def holds(self, sample: Sequence[RequestRecord]) -> bool:
        rate = error_rate(sample)
        return rate is not None and rate > self.threshold

    def value(self, sample: Sequence[RequestRecord]) -> str:
        return f"error rate {_pct(error_rate(sample))}"

    def describe(self) -> str:
        return f"error rate > {self.threshold:.1%}{self._held_for()}"


@dataclass(frozen=True)
class HealthChecksFailingAbove(ErrorRateAbove):
    """The share of failed health checks (gameday.load.health: each pod's readiness, sampled) over a
    window, above ``threshold``: "more than 50 % of health checks failing for 1 min"."""

    source: ClassVar[str] = "health checks"
    # one pod failing among healthy ones is no onset of "more than half failing": the stretch starts
    # where the share from there on holds
    tails: ClassVar[bool] = True

    def value(self, sample: Sequence[RequestRecord]) -> str:
        return f"{_pct(error_rate(sample))} of health checks failing"

    def observe(self, records: Sequence[RequestRecord], now: float) -> str:
        sample = window(records, now - self.window_seconds, now)
        return f"{self.value(sample)} ({len(sample)} checks in the last {self.window_seconds:g}s)"

    def describe(self) -> str:
        return f"health checks failing > {self.threshold:.1%}{self._held_for()}"


@dataclass(frozen=True)
class ErrorRateAtMost(_Sustained):
    """The recovery side: errors back at (or under) the baseline; ``strict``: below it."""

    threshold: float = 0.01
    strict: bool = False

    def bad(self, record: RequestRecord) -> bool:
        return bool(record.failed)

    def holds(self, sample: Sequence[RequestRecord]) -> bool:
        rate = error_rate(sample)
        if rate is None:
            return False
        return rate < self.threshold if self.strict else rate <= self.threshold

    def value(self, sample: Sequence[RequestRecord]) -> str:
        return f"error rate {_pct(error_rate(sample))}"

    def describe(self) -> str:
        return f"error rate {'<' if self.strict else '<='} {self.threshold:.1%}{self._held_for()}"


@dataclass(frozen=True)
class ErrorRateBelow(ErrorRateAtMost):
    """``ErrorRateBelow(threshold=0.01, for_seconds=30)``: strictly below 1 %, held 30 s."""

    strict: bool = True


@dataclass(frozen=True)
class _LatencyRule(_Sustained):
    p: float = 95
    factor: float = 2.0
    baseline_ms: float | None = None
    above_ms: float | None = None  # an absolute threshold instead of factor x baseline
    # Loopback latencies are ~1 ms, so "2x baseline" alone would fire on scheduler noise.
    min_ms: float = 20.0

    @property
    def threshold_ms(self) -> float:
        if self.above_ms is not None:
            return self.above_ms
        if self.baseline_ms is None:
            raise ConfigError(f"{type(self).__name__} needs a baseline latency",
                              fix="call .with_baseline(records) or give baseline_ms / above_ms")
        return max(self.baseline_ms * self.factor, self.min_ms)

    def bad(self, record: RequestRecord) -> bool:
        return record.latency_ms > self.threshold_ms

    def with_baseline(self, baseline: Sequence[RequestRecord] | Baseline) -> Self:
        """A copy whose baseline is the p-th percentile of ``records`` (e.g. before the deploy),
        or the same percentile of a captured Baseline (p50, p95 or p99)."""
        if isinstance(baseline, Baseline):
            value = getattr(baseline, f"p{self.p:g}_ms", None)
            if value is None:
                raise ConfigError(f"the baseline has no p{self.p:g} latency", fix="use p50, p95 or p99")
            return self.with_baseline_value(float(value))
        value = latency(baseline, self.p)
        if value is None:
            raise ConfigError("no responses to take a latency baseline from",
                              fix="let the load run against the stable version first")
        return self.with_baseline_value(value)

    def with_baseline_value(self, ms: float) -> Self:
        """A copy whose baseline pN latency is ``ms``."""
        if not ms >= 0:
            raise ConfigError(f"baseline latency {ms!r} ms must be >= 0", fix="give the baseline's pN in ms")
        return dataclasses.replace(self, baseline_ms=float(ms))

    def value(self, sample: Sequence[RequestRecord]) -> str:
        current = latency(sample, self.p)
        return f"p{self.p:g} {'no data' if current is None else f'{current:.1f}ms'}"


@dataclass(frozen=True)
class LatencyAbove(_LatencyRule):
    alarm: ClassVar[bool] = True
    tails: ClassVar[bool] = True

    def holds(self, sample: Sequence[RequestRecord]) -> bool:
        current = latency(sample, self.p)
        return current is not None and current > self.threshold_ms

    def describe(self) -> str:
        return f"p{self.p:g} latency > {self.threshold_ms:.1f}ms{self._held_for()}"


@dataclass(frozen=True)
class LatencyAtMost(_LatencyRule):
    """pN within ``factor`` x the baseline (or at most ``above_ms``); ``strict``: below it."""

    factor: float = 1.5
    strict: bool = False

    def holds(self, sample: Sequence[RequestRecord]) -> bool:
        current = latency(sample, self.p)
        if current is None:
            return False
        return current < self.threshold_ms if self.strict else current <= self.threshold_ms

    def describe(self) -> str:
        return f"p{self.p:g} latency {'<' if self.strict else '<='} {self.threshold_ms:.1f}ms{self._held_for()}"


@dataclass(frozen=True)
class LatencyBelow(LatencyAtMost):
    """``LatencyBelow(p=95, below_ms=300, for_seconds=30)``: p95 strictly under 300 ms, held 30 s
    (without ``below_ms``: under ``factor`` x the baseline)."""

    strict: bool = True
    below_ms: float | None = None

    @property
    def threshold_ms(self) -> float:
        return self.below_ms if self.below_ms is not None else super().threshold_ms


@dataclass(frozen=True)
class VersionShare(_Sustained):
    """``VersionShare("1.0.0", at_least=1.0)``: all traffic served by the stable version."""

    version: str
    at_least: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.version or not 0 < self.at_least <= 1:
            raise ConfigError(f"VersionShare needs a version and 0 < at_least <= 1 (got {self.version!r}, "
                              f"{self.at_least})", fix="e.g. VersionShare('1.0.0', at_least=1.0)")

    def holds(self, sample: Sequence[RequestRecord]) -> bool:
        return version_share(sample).get(self.version, 0.0) >= self.at_least

    def bad(self, record: RequestRecord) -> bool:
        return record.version != self.version

    def value(self, sample: Sequence[RequestRecord]) -> str:
        shares = version_share(sample)
        return ", ".join(f"{v} {s:.0%}" for v, s in shares.items()) or "no requests"

    def describe(self) -> str:
        return f"{self.at_least:.0%} of requests served by {self.version}{self._held_for()}"


@dataclass(frozen=True)
class AllOf(Trigger):
    """Every rule holds at once, e.g. recovery = errors back down and 100 % on stable."""

    rules: tuple[Trigger, ...] = ()

    def evaluate(self, records: Sequence[RequestRecord], now: float) -> bool:
        return bool(self.rules) and all(rule.evaluate(records, now) for rule in self.rules)

    def describe(self) -> str:
        return " and ".join(rule.describe() for rule in self.rules)

    def observe(self, records: Sequence[RequestRecord], now: float) -> str:
        return "; ".join(rule.observe(records, now) for rule in self.rules)

    def lookback(self) -> float:
        return max((rule.lookback() for rule in self.rules), default=0.0)

    def moment(self, records: Sequence[RequestRecord], since: float | None, held: float) -> float:
        return max((rule.moment(records, since, held) for rule in self.rules), default=held)

    def scaled(self, factor: float) -> Trigger:
        return AllOf(tuple(rule.scaled(factor) for rule in self.rules))


TRIGGERS: dict[str, type[Trigger]] = {
    "error-rate-above": ErrorRateAbove,
    "error-rate-at-most": ErrorRateAtMost,
    "error-rate-below": ErrorRateBelow,
    "latency-above": LatencyAbove,
    "latency-at-most": LatencyAtMost,
    "latency-below": LatencyBelow,
    "version-share": VersionShare,
    "all-of": AllOf,
}


def _option_kind(option: dataclasses.Field[Any]) -> str:
    """``bool``, ``str`` or ``number``, from the option's annotation (a string here)."""
    annotation = str(option.type)
    if annotation == "bool":
        return "bool"
    return "str" if annotation == "str" else "number"


def trigger_from_data(data: Any, where: str = "trigger") -> Trigger:
    """``{"error-rate-above": {"threshold": 0.05, "for_seconds": 10}}`` -> a rule; ConfigError names ``where``."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ConfigError(f"{where}: a trigger is one mapping like {{error-rate-above: {{threshold: 0.05}}}}",
                          fix=f"use one of: {', '.join(TRIGGERS)}")
    (kind, options), = data.items()
    cls = TRIGGERS.get(kind)
    if cls is None:
        raise ConfigError(f"{where}: unknown trigger {kind!r}", fix=f"use one of: {', '.join(TRIGGERS)}")
    if cls is AllOf:
        if not isinstance(options, list) or not options:
            raise ConfigError(f"{where}: all-of needs a list of triggers", fix="e.g. all-of: [{...}, {...}]")
        return AllOf(tuple(trigger_from_data(item, f"{where}.all-of[{i}]") for i, item in enumerate(options)))
    options = options or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: {kind} takes a mapping of options", fix="e.g. {threshold: 0.05, for_seconds: 10}")
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{where}: {kind} has no option {', '.join(unknown)}",
                          fix=f"options: {', '.join(sorted(known))}")
    missing = sorted(name for name, f in known.items() if name not in options and f.init
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{where}: {kind} needs {', '.join(missing)}", fix=f"e.g. {kind}: {{{missing[0]}: ...}}")
    for name, value in options.items():
        kind_of = _option_kind(known[name])
        if value is None:
            continue
        if kind_of == "bool":
            ok = isinstance(value, bool)
        elif kind_of == "str":
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, float | int) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"{where}: {kind}.{name}={value!r} has the wrong type",
                              fix={"bool": "give true or false", "str": "give a string"}.get(kind_of, "give a number"))
    try:
        return cls(**options)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", fix=exc.fix) from None


