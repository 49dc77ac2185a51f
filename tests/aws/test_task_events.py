"""ECS "time to" figures come from the task runner's event times, not from a poll's tick.

Three layers: the arithmetic on a service's task times (no processes), a task's own
instants (a probe's verdict at the moment it finished, an exit at the moment the process
ended, however late the runner reads them), and whole rehearsals against moto, where
each figure is checked against the tasks' events, against the poll that gave the
verdict and against what the test itself observes of the processes.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gameday.aws import ecs as ecs_api
from gameday.aws.ecs import FAILED_AT, HEALTHY_AT, RECONCILE_TICK, TaskTimes, first_failure, stable_moment
from gameday.aws.healthcheck import HEALTHY, HealthCheck, HealthState
from gameday.aws.task_process import AddressPool, ContainerProcess, TaskProcess
from gameday.images import ImageCatalog
from gameday.journal import Fidelity, Journal
from gameday.procedures.ecs_rollback import EcsRollbackRehearsal

TARGET = "arn:aws:ecs:us-east-1:123456789012:task-definition/orders:1"
BAD = "arn:aws:ecs:us-east-1:123456789012:task-definition/orders:2"


def _times(arn: str, desired: str, *, td: str = TARGET, by: str = "ecs-svc/1", **instants: float) -> TaskTimes:
    return TaskTimes(arn=arn, task_definition=td, started_by=by, desired_status=desired,
                     last_status="RUNNING" if desired == "RUNNING" else "STOPPED", **instants)


def _measure(journal: Journal, name: str):  # type: ignore[no-untyped-def]
    found = [m for m in journal.loose.measurements if m.name == name]
    assert found, f"no measurement {name}"
    return found[-1]


# -- the arithmetic --------------------------------------------------------------------
def test_stable_moment_is_the_later_of_last_healthy_and_last_stop_since_the_update() -> None:
    times = [
        _times("new-1", "RUNNING", healthy=101.25, reconcile_tick=0.5),
        _times("new-2", "RUNNING", healthy=101.75, reconcile_tick=0.5),
        _times("old-1", "STOPPED", td=BAD, by="ecs-svc/0", stopped=102.125),
        _times("before", "STOPPED", td=BAD, by="ecs-svc/0", stopped=99.0),  # stopped before the update: not on the path
    ]
    moment = stable_moment(times, since=100.0, task_definition=TARGET)
    assert moment is not None and (moment.at, moment.last, moment.reconcile_tick) == (102.125, "stopped", 0.5)
    # without the late stop, the last task becoming healthy completes the deployment
    moment = stable_moment(times[:2] + times[3:], since=100.0, task_definition=TARGET)
    assert moment is not None and (moment.at, moment.last) == (101.75, "healthy")


def test_no_event_times_means_no_event_figure() -> None:
    # real ECS publishes no healthy instant: the rehearsal falls back to its poll
    assert stable_moment([_times("t", "RUNNING", started=100.0)], since=99.0, task_definition=TARGET) is None
    # a running task of another task definition: not stable on the target, whatever the times say
    assert stable_moment([_times("t", "RUNNING", td=BAD, healthy=101.0)], since=99.0, task_definition=TARGET) is None
    assert stable_moment([], since=99.0, task_definition=TARGET) is None


def test_first_failure_of_a_deployment() -> None:
    times = [
        _times("a", "STOPPED", by="ecs-svc/2", failed=103.5),
        _times("b", "STOPPED", by="ecs-svc/2", failed=102.25),
        _times("c", "STOPPED", by="ecs-svc/1", failed=50.0),  # another deployment's failure
        _times("d", "RUNNING", by="ecs-svc/2"),
    ]
    first = first_failure(times, "ecs-svc/2")
    assert first is not None and (first.arn, first.failed) == ("b", 102.25)
    assert first_failure(times, "ecs-svc/9") is None


def test_task_times_read_ecs_timestamps_and_runner_attributes() -> None:
    task = {
        "taskArn": "arn:task/1", "taskDefinitionArn": TARGET, "startedBy": "ecs-svc/1", "desiredStatus": "STOPPED",
        "lastStatus": "STOPPED", "stoppedReason": "Essential container in task exited",
        "startedAt": datetime.fromtimestamp(100.0, UTC), "stoppedAt": datetime.fromtimestamp(101.5, UTC),
        "attributes": [{"name": FAILED_AT, "value": "101.250001"}, {"name": RECONCILE_TICK, "value": "0.5"},
                       {"name": HEALTHY_AT, "value": "not a number"}],
    }
    times = TaskTimes.of(task)
    assert (times.started, times.stopped, times.failed, times.reconcile_tick) == (100.0, 101.5, 101.250001, 0.5)
    assert times.healthy is None and times.stopping is None


# -- one task's instants ------------------------------------------------------------------
@pytest.fixture
def probes():  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def test_a_probe_verdict_counts_from_when_it_finished_and_wakes_the_runner(tmp_path: Path, probes) -> None:
    woken = threading.Event()
    task = TaskProcess("probe-test", {"containerDefinitions": []}, ImageCatalog(), AddressPool(), tmp_path, probes,
                       wake=woken.set)
    check = HealthCheck(argv=["true"], interval=30.0, retries=2)
    container = ContainerProcess(name="app", image="x", port=None, env={},
                                 health=HealthState(check, started=time.monotonic() - 30.0))
    task.containers.append(container)
    task.last_status = "RUNNING"

    task.poll()  # the probe is due: it starts on the probe pool
    assert container.probe is not None
    assert woken.wait(10), "a finished probe must wake the runner, not wait for its next tick"
    time.sleep(0.3)  # the runner reads the result late
    read_at = time.time()
    task.poll()

    assert task.health_status == HEALTHY
    assert task.events.healthy is not None and task.events.healthy <= read_at - 0.25
    # Docker's next probe is one interval after this one finished, not after it was read
    assert container.health is not None
    assert container.health.next_probe == pytest.approx(time.monotonic() - (time.time() - task.events.healthy) + 30.0,
                                                        abs=0.05)


def test_an_exit_counts_from_when_the_process_ended(tmp_path: Path, probes, test_images: Path) -> None:
    catalog = ImageCatalog()
    catalog.add_file(test_images)
    woken = threading.Event()
    definition = {"containerDefinitions": [{"name": "app", "image": "gameday-test/webapp:2.0.0-crash", "essential": True,
                                            "portMappings": [{"containerPort": 8080}]}]}
    task = TaskProcess("exit-test", definition, catalog, AddressPool(), tmp_path, probes, wake=woken.set)
    task.start()
    assert woken.wait(20), "an exit must wake the runner"
    time.sleep(0.3)  # the runner reads the exit late
    read_at = time.time()
    task.poll()
    task.poll()

    assert task.failed and task.stop_code == "EssentialContainerExited"
    assert task.events.started is not None and task.events.failed is not None
    assert task.events.started <= task.events.failed <= read_at - 0.25
    assert task.last_status == "STOPPED" and task.events.stopped == task.events.failed  # one process: its exit


# -- whole rehearsals -------------------------------------------------------------------------
class LastAnswer:
    """Asks each address for /version every 20 ms; remembers when it last sent a request that got an
    answer: the process was alive then, so it stopped no earlier (an observation of the test's own)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LastAnswer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for address in self.addresses:
                sent = time.time()
                try:
                    with urllib.request.urlopen(f"http://{address}/version", timeout=0.2) as response:
                        response.read()
                except OSError:
                    continue
                self.last[address] = sent
            self._stop.wait(0.02)


def _raw_events(rehearsal: EcsRollbackRehearsal) -> list[dict]:
    ecs, cluster = rehearsal.ecs, rehearsal.spec.cluster
    arns = [a for desired in ("RUNNING", "STOPPED")
            for a in ecs.list_tasks(cluster=cluster, serviceName=rehearsal.spec.name, desiredStatus=desired)["taskArns"]]
    return list(ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"])


def _attribute(task: dict, name: str) -> float:
    return float(next(a["value"] for a in task["attributes"] if a["name"] == name))


@pytest.mark.parametrize("bad", ["2.0.0-crash", "2.0.0-unready"])
def test_time_to_stable_is_the_event_not_the_poll(rehearsal: EcsRollbackRehearsal, bad: str) -> None:
    rehearsal.start("1.0.0", tasks=2)
    rehearsal.deploy(bad)
    rehearsal.expect_deploy_failing()
    rehearsal.leave_rollback_state()
    old = [t.address for t in ecs_api.running_tasks(rehearsal.ecs, rehearsal.spec.cluster, "orders")
           if t.task_definition == rehearsal.versions["1.0.0"] and t.address]
    assert len(old) == 2

    with LastAnswer(old) as watcher:
        result = rehearsal.roll_back_and_wait()
    issued = rehearsal.rollback_issued
    assert issued is not None and result.verdict_s is not None

    # the figure is the event difference, to the millisecond (ECS timestamps carry milliseconds)
    tasks = _raw_events(rehearsal)
    running = [t for t in tasks if t["desiredStatus"] == "RUNNING"]
    assert len(running) == 2 and {t["taskDefinitionArn"] for t in running} == {rehearsal.versions["1.0.0"]}
    healthy = [_attribute(t, HEALTHY_AT) for t in running]
    stops = [t["stoppedAt"].timestamp() for t in tasks
             if t["desiredStatus"] == "STOPPED" and t.get("stoppedAt") and t["stoppedAt"].timestamp() >= issued]
    assert result.time_to_stable_s == pytest.approx(max(healthy + stops) - issued, abs=0.005)
    for task in tasks:  # every stopped task: asked to stop (or failed), then its process exited
        if task["desiredStatus"] == "STOPPED" and task.get("stoppedAt"):
            assert task["stoppingAt"] <= task["stoppedAt"]

    # no later than the poll that gave the verdict (the old figure was that poll's moment) ...
    assert 0 < result.time_to_stable_s < result.verdict_s
    # ... and no earlier than what the test saw: each new task's first probe comes one health-check
    # interval after its start, and every old task still answered the test's own requests at some moment
    interval = float(rehearsal.spec.health_interval_s)
    for task in running:
        started = task["startedAt"].timestamp()
        assert issued - 0.002 <= started and _attribute(task, HEALTHY_AT) >= started + interval - 0.005
    assert set(watcher.last) == set(old)
    assert result.time_to_stable_s >= max(watcher.last.values()) - issued

    figure = _measure(rehearsal.journal, "ecs.rollback_time_to_stable")
    assert figure.fidelity == Fidelity.REAL and figure.value == result.time_to_stable_s
    assert figure.detail.startswith("from update-service to the last ")
    assert "event times from the task runner" in figure.detail
    assert "0.5 s reconcile tick" in figure.detail and "1 s health-check interval" in figure.detail
    assert _measure(rehearsal.journal, "ecs.rollback_update_service_accepted").fidelity == Fidelity.SIMULATED


def test_initial_deploy_and_bad_deploy_figures_come_from_events(rehearsal: EcsRollbackRehearsal) -> None:
    rehearsal.start("1.0.0", tasks=2)
    created = rehearsal.created_at
    assert created is not None
    initial = _measure(rehearsal.journal, "ecs.initial_deploy_to_stable")
    running = [t for t in _raw_events(rehearsal) if t["desiredStatus"] == "RUNNING"]
    assert initial.value == pytest.approx(max(_attribute(t, HEALTHY_AT) for t in running) - created, abs=0.005)
    assert initial.value >= 1.0  # one health-check interval at least
    assert "to the last task of" in initial.detail and "healthy" in initial.detail

    rehearsal.deploy("2.0.0-unready")
    deployed = rehearsal.deployed_at
    assert deployed is not None
    seconds = rehearsal.expect_deploy_failing()
    seen = time.time() - deployed
    deployment = ecs_api.describe_service(rehearsal.ecs, rehearsal.spec.cluster, "orders")["deployments"][0]["id"]
    mine = [t for t in _raw_events(rehearsal) if t["startedBy"] == deployment]
    failed = [t for t in mine if any(a["name"] == FAILED_AT for a in t.get("attributes") or [])]
    first = min(failed, key=lambda t: _attribute(t, FAILED_AT))
    assert seconds == pytest.approx(_attribute(first, FAILED_AT) - deployed, abs=0.005)
    assert seconds < seen
    # 2 failed probes, one health-check interval apart, the first one interval after the task started
    assert seconds >= first["startedAt"].timestamp() + 2 * 1.0 - deployed - 0.005
    detected = _measure(rehearsal.journal, "ecs.bad_deploy_detected")
    assert detected.value == seconds and detected.fidelity == Fidelity.REAL
    assert "health checks" in detected.detail and "1 s health-check interval" in detected.detail
