"""Detection and recovery moments against ground truth, live: a real HTTP service on 127.0.0.1
whose fault is switched on and off at instants the service itself stamps, loaded by gameday's
real load generator (locust, recorded), measured by the rehearsal's own code.

The measuring code is the rehearsal's, unchanged: ``KubernetesRehearsal.wait_for_alarm`` (the
alarm rule polled from t0, the moment taken from the records by ``Trigger.moment``) and
``kubernetes_checks.wait_recovered`` (errors at most 1 % and 100 % on the stable release, held,
from "done").  Neither touches a cluster when the service has a ``url:`` and the on-call has
not acted, so the rehearsal is built from a real project file with ``cluster=None``;
``start_load`` starts the load generator and takes the clean baseline as in a rehearsal.

One trial is one incident, as a rehearsal sees it:

    t0 (bad deploy: release 2.0.0 answers)  --lead 0.4-1.2 s-->  fault on (stamped: S_on)
    ... wait_for_alarm returns ...  "done" marked  --0.5 s-->  fix: fault off + 1.0.0 (S_off)
    ... wait_recovered returns.

The truth is when the service switched (stamped under the lock every request reads the fault
state with, so each request is on one side of it), never when the test meant it to: a late
timer thread moves the truth, not the error.  Errors are measured against it:

    detect error  = detected  - (S_on + the rule's for_seconds, scaled)
    recover error = recovered - S_off

and against what the traffic itself showed, to prove the rules add nothing: the first
affected request sent after the switch (+ for_seconds), and the first request the fixed
service answered.

Load: 4 and 20 users, each paced at 10 requests/s (``constant_throughput(10)``, the load
profile's default), one load run per user count with every fault cycled in it; the two runs go
side by side.  The 503 fault is spread evenly (a failure each time the running share reaches
the rate, from a seeded random phase), so "10 % errors" fails 1 request in 10 and the first
failure comes within 10 requests of the switch; with independent dice (the fault wrapper's)
the first failure's wait is geometric: at 4 users (40 requests/s) and 10 % it is later than
0.5 s in 0.9^20 = 12 % of the incidents, which no rule can see through.  The latency fault adds
400 ms to every request that arrives while it is on; the users are closed-loop (each waits for
its answer), so after the fix the traffic can show it only when a slow answer frees a user,
up to 0.4 s later: at 4 users their slow requests bunch, and the worst recovery sits near 0.4 s.

The alarm rules are as a scenario gives them, ``ErrorRateAbove(threshold=0.05, for_seconds=6)``
(the error step's own) and ``LatencyAbove(p=95, above_ms=200, for_seconds=6)``, rehearsed at
scale 6 (held 1 s over 0.83 s windows; recovery held 0.5 s over 2 s windows).  The latency
step's own rule, p95 above 2 x the baseline's p95 (at least 20 ms), is measured on the same
incidents and printed, not asserted: on a busy machine a healthy request now and then takes
longer than 20 ms, and ``Trigger.moment`` walks the stretch back through such a request when it
is less than a window before the fault, so that rule's detection can come out early.

A trial whose healthy traffic already met the rule within one window before the switch (the
busy machine stalled the service: requests over 200 ms before any fault, for the latency rule;
failed ones, for the error rule) cannot judge detection: the rule rightly counts those requests,
so the switch is no longer the truth.  A slow request is no such thing for the error rule.  It is counted and
left out of the detection bounds, and at most one such trial per configuration is allowed.  A
request sent just before the switch that reached the service after it is the fault's, not a
stall (at 20 users the users fire together: 3 and 5 requests sent 0.1-3.4 ms before the switch
read it and took the 400 ms were seen so): a 503 is only ever the fault's, and a request the
latency fault slowed was answered at least 400 ms after the switch, so only a request answered
sooner than that, or failed without a 503, is a stall.

The table (config, trials, median and worst errors) is printed (``-s``) and written to
``ground-truth-live.txt`` in the test's temporary folder; every trial goes to
``ground-truth-live.json`` beside it.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gameday.load.records import RequestRecord
from gameday.load.triggers import ErrorRateAbove, LatencyAbove, Trigger
from gameday.project import parse
from gameday.rehearsals import kubernetes_checks
from gameday.rehearsals.kubernetes import KubernetesRehearsal
from gameday.timeline import RollbackTimeline

pytestmark = pytest.mark.slow

USERS = (4, 20)
RATE = 10.0  # requests per second per user
SCALE = 6.0  # the rehearsal's time scale: a 6 s hold rehearsed in 1 s
HOLD = 6.0  # the alarm rules' for_seconds, as a scenario states them
TRIALS = 4  # incidents per configuration
LEAD = (0.4, 1.2)  # t0 comes this long before the fault
DONE_EARLY = 0.5  # "done" is marked this long before the fix reaches the traffic
EXTRA_MS = 400.0
BOUND = 0.5  # seconds: the worst error allowed, either way
# seconds: what the rules may add to what the traffic showed.  Not zero: with a core kept busy, a
# request sent a little earlier can be served a little later by another server thread (across the
# switch), and the records order requests by when they were sent (61 ms seen so).
ADDED = 0.15
STABLE, BAD = "1.0.0", "2.0.0"
HEADER = "X-App-Version"


@dataclass(frozen=True)
class Fault:
    kind: str  # "errors" | "latency"
    rate: float = 0.0  # share of requests answered 503 while on (errors)

    @property
    def label(self) -> str:
        return f"{self.rate:.0%} errors" if self.kind == "errors" else f"+{EXTRA_MS:.0f} ms"


FAULTS = (Fault("errors", 0.5), Fault("errors", 0.1), Fault("latency"))
CONFIGS = [(users, fault) for users in USERS for fault in FAULTS]


# -- the service under test ------------------------------------------------------------------------
@dataclass
class Switch:
    """A change of the service's state; ``at`` is when it really happened."""

    at: float | None = None
    happened: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float = 5.0) -> float:
        assert self.happened.wait(timeout), "the service never switched"
        assert self.at is not None
        return self.at


class SwitchableService:
    """``GET /cart`` answered by a release (``X-App-Version``) with a fault that is on or off.

    Every request reads the state once, under the lock the switches take; a switch stamps its
    instant under that lock, so a request read the state either before the stamp or after it.
    """

    def __init__(self, seed: int) -> None:
        self.lock = threading.Lock()
        self.version = STABLE
        self.fault: Fault | None = None
        self.credit = 0.0
        self.rng = random.Random(seed)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SwitchableService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _apply(self, switch: Switch, version: str, fault: Fault | None) -> None:
        with self.lock:
            self.version, self.fault = version, fault
            self.credit = self.rng.random()  # the phase of the evenly spread failures
            switch.at = time.time()
        switch.happened.set()

    def switch(self, version: str, fault: Fault | None = None, *, at: float | None = None) -> Switch:
        """Switch now, or at ``at`` (epoch s) from a timer thread; the Switch says when it happened."""
        switch = Switch()
        if at is None:
            self._apply(switch, version, fault)
            return switch

        def later() -> None:
            time.sleep(max(0.0, at - time.time()))
            self._apply(switch, version, fault)

        threading.Thread(target=later, daemon=True).start()
        return switch

    def answer(self) -> tuple[int, str, float]:
        """(status, release, extra seconds) for one request arriving now."""
        with self.lock:
            fault, version = self.fault, self.version
            if fault is not None and fault.kind == "errors":
                self.credit += fault.rate
                if self.credit >= 1.0:
                    self.credit -= 1.0
                    return 503, version, 0.0
        return 200, version, (EXTRA_MS / 1000 if fault is not None and fault.kind == "latency" else 0.0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each keep-alive answer waits ~40 ms for a delayed ACK

            def do_GET(self) -> None:
                status, version, extra = service.answer()
                if extra:
                    time.sleep(extra)
                raw = json.dumps({"items": [], "build": {"release": version}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header(HEADER, version)
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


# -- one load run with every fault cycled in it ----------------------------------------------------
@dataclass(frozen=True)
class Trial:
    users: int
    fault: str
    t0: float
    fault_on: float  # S_on, stamped by the service
    detected: float  # the rehearsal's "detected" mark
    first_affected: float  # when the first affected request after the switch was sent
    done: float
    fault_off: float  # S_off, stamped by the service
    recovered: float  # the rehearsal's "recovered" mark
    first_fixed: float  # when the first request the fixed service answered was sent
    step_rule_detected: float | None = None  # latency: the step's "p95 above 2 x baseline" rule
    step_rule_ms: float | None = None  # its threshold
    # requests sent within one window before the switch that already met the rule (a stall of the busy
    # machine: 9 healthy requests at 202-247 ms, 0.8 s before a switch, were seen so).  The rule rightly
    # counts them, so the switch is no longer the truth: such a trial cannot judge detection.
    pre_switch_affected: int = 0

    @property
    def judged(self) -> bool:
        return self.pre_switch_affected == 0

    @property
    def hold(self) -> float:
        return HOLD / SCALE

    @property
    def detect_error(self) -> float:
        return self.detected - (self.fault_on + self.hold)

    @property
    def recover_error(self) -> float:
        return self.recovered - self.fault_off

    @property
    def detect_added(self) -> float:
        return self.detected - (self.first_affected + self.hold)

    @property
    def recover_added(self) -> float:
        return self.recovered - self.first_fixed


def alarm_rule(fault: Fault) -> Trigger:
    """"the alarm for an error rate above 5% for 6 seconds", or p95 latency above 200 ms for 6 s."""
    if fault.kind == "errors":
        return ErrorRateAbove(threshold=0.05, for_seconds=HOLD)
    return LatencyAbove(p=95, above_ms=EXTRA_MS / 2, for_seconds=HOLD)


def step_latency_rule(rehearsal: KubernetesRehearsal) -> LatencyAbove:
    """The latency step's rule ("p95 latency above 2 x baseline for 6 seconds"), scaled."""
    rule = LatencyAbove(p=95, factor=2, for_seconds=HOLD).with_baseline(rehearsal.require_baseline())
    return rule.scaled(SCALE)  # type: ignore[return-value]


def affected(record: RequestRecord) -> bool:
    return record.status == 503 or record.latency_ms > EXTRA_MS / 2


def fault_explains(record: RequestRecord, fault: Fault, switched_on: float) -> bool:
    """Whether the fault can have made ``record`` meet the rule, i.e. it reached the service after
    the switch: the service answers 503 only under the error fault, and a request the latency fault
    slowed was answered at least EXTRA_MS after the switch."""
    if fault.kind == "errors":
        return record.status == 503
    return record.ts >= switched_on + EXTRA_MS / 1000


def project_file(folder: Path, url: str, users: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service.yaml").write_text("# never applied: the rehearsal's load targets url:\n")
    path = folder / "gameday.yaml"
    path.write_text(json.dumps({"services": {"checkout-api": {
        "manifests": "service.yaml",
        "url": url,
        "release": {"header": HEADER},
        "load": {"users": users, "rate": RATE, "requests": [{"path": "/cart", "expect": [200]}]},
    }}}))
    return path


def run_lane(users: int, folder: Path, trials_per_fault: int = TRIALS) -> list[Trial]:
    """One load run at ``users`` users: ``trials_per_fault`` incidents of every fault, interleaved."""
    rng = random.Random(users)
    service = SwitchableService(seed=users).start()
    rehearsal = KubernetesRehearsal(None, parse(project_file(folder, service.url, users)), scale=SCALE,
                                    workdir=folder / "load")
    trials = []
    try:
        rehearsal.start_load()  # the load generator, then the clean baseline, as in a rehearsal
        load = rehearsal.require_load()
        for _ in range(trials_per_fault):
            for fault in FAULTS:
                rehearsal.timeline = RollbackTimeline(scale=SCALE)
                t0 = rehearsal.timeline.mark("t0")
                service.switch(BAD)
                on = service.switch(BAD, fault, at=t0 + rng.uniform(*LEAD))
                rehearsal.wait_for_alarm(alarm_rule(fault), timeout=8)
                fault_on = on.wait()
                done = rehearsal.timeline.mark("done")
                off = service.switch(STABLE, None, at=done + DONE_EARLY)
                kubernetes_checks.wait_recovered(rehearsal, STABLE, timeout=10)
                fault_off = off.wait()
                records = load.records(since=t0 - 1)
                marks = rehearsal.timeline.marks
                first_affected = min(r.sent for r in records if r.ts > fault_on and affected(r))
                window = alarm_rule(fault).scaled(SCALE).window_seconds  # type: ignore[attr-defined]
                counts = alarm_rule(fault).bad  # type: ignore[attr-defined]  # the rule's own verdict on a request
                pre_switch = sum(1 for r in records if fault_on - window <= r.sent < fault_on and counts(r)
                                 and not fault_explains(r, fault, fault_on))
                first_fixed = min(r.sent for r in records if r.ts > fault_off and r.version == STABLE)
                step_rule, step_detected = step_latency_rule(rehearsal), None
                if fault.kind == "latency":
                    step_detected = step_rule.moment(records, t0, done)
                trials.append(Trial(users, fault.label, t0, fault_on, marks["detected"], first_affected,
                                    done, fault_off, marks["recovered"], first_fixed, step_detected,
                                    step_rule.threshold_ms, pre_switch))
                assert t0 < fault_on < done < fault_off, trials[-1]
    finally:
        rehearsal.stop()
        service.stop()
    return trials


def table(trials: list[Trial]) -> str:
    rows = [f"{'config':<22} {'trials':>6} {'detect med':>10} {'detect worst':>12} {'recover med':>11} "
            f"{'recover worst':>13} {'rules added (worst)':>19}"]
    for users, fault in CONFIGS:
        mine = [t for t in trials if t.users == users and t.fault == fault.label]
        judged = [t for t in mine if t.judged] or mine
        detect, recover = [t.detect_error for t in judged], [t.recover_error for t in mine]
        added = max(max(abs(t.detect_added) if t.judged else 0.0, abs(t.recover_added)) for t in mine)
        trials_said = f"{len(judged)}/{len(mine)}" if len(judged) < len(mine) else str(len(mine))
        rows.append(f"{f'{users} users, {fault.label}':<22} {trials_said:>6} {statistics.median(detect):>+9.3f}s "
                    f"{max(detect, key=abs):>+11.3f}s {statistics.median(recover):>+10.3f}s "
                    f"{max(recover, key=abs):>+12.3f}s {added:>18.3f}s")
    rows.append("the latency step's own rule (p95 > 2 x the baseline's p95) on the same incidents, not asserted:")
    for users in USERS:
        mine = [t for t in trials if t.users == users and t.step_rule_detected is not None]
        errors = [t.step_rule_detected - (t.fault_on + t.hold) for t in mine if t.step_rule_detected is not None]
        if errors:
            rows.append(f"  {users} users, threshold {mine[0].step_rule_ms:.1f} ms: detect median "
                        f"{statistics.median(errors):+.3f}s, worst {max(errors, key=abs):+.3f}s")
    rows.append("trials a/b: a judged on detection; the others had requests meeting the rule within one window "
                "before the switch (a stall of the machine, not the fault), so the switch was not the truth")
    return "\n".join(rows)


@pytest.fixture(scope="module")
def live_trials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Trial]]:
    folder = tmp_path_factory.mktemp("ground-truth-live")
    began = time.monotonic()
    with ThreadPoolExecutor(len(USERS)) as pool:
        lanes = [pool.submit(run_lane, users, folder / f"{users}-users") for users in USERS]
        trials = [trial for lane in lanes for trial in lane.result()]
    text = (f"{table(trials)}\n(errors in seconds, signed: + late, - early; worst = largest |error|; "
            f"{time.monotonic() - began:.0f} s for both load runs)\n")
    (folder / "ground-truth-live.txt").write_text(text)
    (folder / "ground-truth-live.json").write_text(json.dumps([asdict(t) for t in trials], indent=1))
    print(f"\n{text}results: {folder / 'ground-truth-live.txt'}")
    yield trials


@pytest.mark.parametrize("users, fault", CONFIGS, ids=[f"{u}users-{f.kind}-{f.rate:g}" for u, f in CONFIGS])
def test_detection_and_recovery_are_within_half_a_second_of_the_switch_worst_case(live_trials, users, fault):
    mine = [t for t in live_trials if t.users == users and t.fault == fault.label]
    assert len(mine) == TRIALS
    judged = [t for t in mine if t.judged]
    assert len(judged) >= TRIALS - 1, [t.pre_switch_affected for t in mine]  # a stall now and then, not a habit
    assert max(abs(t.detect_error) for t in judged) <= BOUND, [round(t.detect_error, 3) for t in judged]
    assert max(abs(t.recover_error) for t in mine) <= BOUND, [round(t.recover_error, 3) for t in mine]


def test_the_rules_add_nothing_to_what_the_traffic_showed(live_trials):
    """Detection is the first affected request (+ the hold), recovery the first request the fixed
    service answered: neither the poll cadence nor the windows add to them."""
    added = [(t.users, t.fault, round(t.detect_added, 3) if t.judged else 0.0, round(t.recover_added, 3))
             for t in live_trials]
    assert all(abs(d) <= ADDED and abs(r) <= ADDED for *_, d, r in added), added
