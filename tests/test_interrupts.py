"""Ctrl-C and SIGTERM stop a run at once and say so everywhere; nothing gameday started outlives it.

The runs here use a team step module of their own (no Postgres, no cluster): a scenario that
marks that it started, then works until it is stopped.  Every wait is bounded and polled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal, Status
from gameday.lifecycle import pid_alive, wait_until
from gameday.report.junit import render_junit
from gameday.report.summary import render_summary

STEPS = """\
import os
import time
from pathlib import Path

from pytest_bdd import given, parsers


@given(parsers.parse('scenario "{name}" works for {seconds:d} seconds'))
def works(name, seconds):
    Path(os.environ["GAMEDAY_TEST_MARKS"], name).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
"""

WORK_S = 45  # far longer than any bound below: a run that is not stopped is caught by the timeout
FEATURE = f"""\
Feature: interrupts
  Scenario: first
    Given scenario "first" works for {WORK_S} seconds

  Scenario: second
    Given scenario "second" works for {WORK_S} seconds
"""


class Run:
    def __init__(self, tmp_path: Path, *, ignore_sigint: bool = False) -> None:
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        self.reports = tmp_path / "reports"
        (tmp_path / "slow_steps.py").write_text(STEPS)
        (tmp_path / "slow.feature").write_text(FEATURE)
        # what a non-interactive shell's background job, nohup or some CI runners hand us
        preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gameday.cli", "run", "slow.feature", "--steps", str(tmp_path / "slow_steps.py"),
             "--reports", str(self.reports), "--run-id", "r1"],
            cwd=tmp_path, env={**os.environ, "GAMEDAY_TEST_MARKS": str(self.marks)}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, preexec_fn=preexec)
        self.output = ""

    def started(self, name: str) -> bool:
        return (self.marks / name).exists()

    def wait_for(self, name: str) -> None:
        try:
            wait_until(lambda: self.started(name) or self.proc.poll() is not None, timeout=60,
                       what=f"scenario {name} to start")
        except EnvironmentNotReady:
            self.proc.kill()
            raise
        assert self.started(name), self.finish(10)

    def interrupt(self, signum: int, *, within: float = 30) -> float:
        """Send ``signum``; the seconds the run took to exit (it must, within ``within``)."""
        sent = time.monotonic()
        self.proc.send_signal(signum)
        self.finish(within)
        return time.monotonic() - sent

    def finish(self, timeout: float) -> str:
        try:
            self.output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
            pytest.fail(f"the run was still going {timeout:g}s after the signal:\n{self.output}")
        return self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    @property
    def out(self) -> Path:
        return self.reports / "r1"

    def journal(self) -> dict:
        return json.loads((self.out / "journal.json").read_text())


@pytest.fixture
def make_run(tmp_path):
    runs: list[Run] = []

    def make(**kwargs: bool) -> Run:
        runs.append(Run(tmp_path, **kwargs))
        return runs[-1]

    yield make
    for run in runs:
        run.kill()


def test_ctrl_c_stops_a_run_that_was_started_with_sigint_ignored(make_run):
    run = make_run(ignore_sigint=True)
    run.wait_for("first")
    run.interrupt(signal.SIGINT)
    assert run.proc.returncode == 130, run.output
    journal = run.journal()
    assert journal["status"] == "interrupted" and journal["interrupted_by"] == "SIGINT"
    assert [(s["name"], s["status"]) for s in journal["scenarios"]] == [("first", "interrupted")]
    assert not run.started("second")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_scenario_a_signal_cut_short_is_interrupted_in_every_report(make_run, signum):
    name = signal.Signals(signum).name
    run = make_run()
    run.wait_for("first")
    run.interrupt(signum)
    assert run.proc.returncode == 128 + signum, run.output

    journal = run.journal()
    assert journal["status"] == "interrupted" and journal["interrupted_by"] == name
    [scenario] = journal["scenarios"]
    assert (scenario["status"], scenario["error"]) == ("interrupted", f"interrupted by {name}")
    [step] = scenario["steps"]
    assert step["status"] == "interrupted" and step["end"] is not None

    assert "passed" not in run.output
    assert f"⏹ Given scenario \"first\" works for {WORK_S} seconds" in run.output
    assert f"interrupted by {name}" in run.output

    summary = (run.out / "summary.md").read_text()
    assert "**Verdict: INTERRUPTED**" in summary
    assert "0 passed, 0 failed, 0 errors, 1 interrupted" in summary
    assert "| first | ⏹ interrupted |" in summary and "✅" not in summary

    suite = ET.parse(run.out / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("1", "1", "0")
    [case] = suite.iter("testcase")
    [error] = case.findall("error")
    assert error.get("message") == f"interrupted by {name}"


def test_sigterm_ends_the_whole_run_at_once_with_143(make_run):
    run = make_run()
    run.wait_for("first")
    took = run.interrupt(signal.SIGTERM, within=30)
    assert run.proc.returncode == 143, run.output
    assert not run.started("second"), "the run went on to the next scenario after SIGTERM"
    journal = run.journal()
    assert [s["name"] for s in journal["scenarios"]] == ["first"]
    assert journal["status"] == "interrupted" and journal["interrupted_by"] == "SIGTERM"
    assert took < 30


# -- the reports alone, from a journal -------------------------------------------------------


def test_an_interrupt_after_the_last_step_still_reads_interrupted_not_passed():
    journal = Journal(run_id="r3")
    journal.begin_scenario("done", feature="f", test_id="t::done").finish(Status.PASSED)
    cut = journal.begin_scenario("cut", feature="f", test_id="t::cut")
    journal.begin_step("Given", "one").finish(Status.PASSED)
    cut.finish(Status.PASSED)  # what pytest-bdd's after-scenario hook does while the interrupt unwinds
    journal.interrupt("SIGTERM", test_id="t::cut")
    journal.finish(Status.INTERRUPTED)
    data = journal.to_dict()
    assert [(s["name"], s["status"]) for s in data["scenarios"]] == [("done", "passed"), ("cut", "interrupted")]
    assert data["scenarios"][1]["steps"][0]["status"] == "passed"  # the step did finish
    assert data["interrupted_by"] == "SIGTERM"
    summary = render_summary(data)
    assert "1 passed, 0 failed, 0 errors, 1 interrupted" in summary
    error = ET.fromstring(render_junit(data).split("?>", 1)[1]).find("testcase[@name='cut']/error")
    assert error is not None and error.get("message") == "interrupted by SIGTERM"


def test_a_run_without_interrupts_keeps_its_summary_line():
    journal = Journal(run_id="r4")
    journal.begin_scenario("ok", feature="f").finish(Status.PASSED)
    journal.finish()
    summary = render_summary(journal.to_dict())
    assert "1 passed, 0 failed, 0 errors\n" in summary and "interrupted" not in summary


# -- nothing outlives a harness killed outright ----------------------------------------------

HARNESS = """
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gameday.lifecycle import wait_until
from gameday.load import LoadGenerator, LoadProfile, RequestSpec

class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
profile = LoadProfile(users=1, rate=5, requests=(RequestSpec(path="/"),))
url = f"http://127.0.0.1:{server.server_address[1]}"
holder = {}
if sys.argv[1] == "thread":  # started from a short-lived thread: locust must not die with that thread
    worker = threading.Thread(target=lambda: holder.update(load=LoadGenerator(url, profile=profile, max_seconds=120).start()))
    worker.start()
    worker.join()
    load = holder["load"]
    seen = len(load.records())  # traffic still flows after that thread is gone
    wait_until(lambda: len(load.records()) > seen + 3, timeout=30, what="locust to go on after its thread ended")
else:
    holder["load"] = LoadGenerator(url, profile=profile, max_seconds=120).start()
print(holder["load"]._proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_sigkilled_harness_takes_its_locust_down(where):
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, where], stdout=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    locust = 0
    try:
        line = harness.stdout.readline().strip()  # the load is flowing once it prints
        assert line.isdigit(), f"the harness did not start its load (exit {harness.poll()})"
        locust = int(line)
        assert pid_alive(locust)
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait(timeout=10)
        try:
            wait_until(lambda: not pid_alive(locust), timeout=10, what=f"locust {locust} to die with its harness")
        except EnvironmentNotReady:
            pytest.fail("locust outlived the SIGKILLed harness")
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        if pid_alive(locust):
            os.kill(locust, signal.SIGKILL)


# An interrupt that lands while a module is being imported may surface as another error: Python wraps
# whatever a class body's __set_name__ raises (our handler's SystemExit or Interrupted) in a RuntimeError,
# which the step-module loader reports as a module that does not import (exit 2).  The run must still
# exit as interrupted, by that signal.
SELF_SIGNAL = """\
import os
import signal


class Field:
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.{name})


class Model:
    value = Field()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupt_inside_an_import_is_an_interrupt_not_bad_input(tmp_path: Path, signum: signal.Signals):
    (tmp_path / "selfsignal_steps.py").write_text(SELF_SIGNAL.format(name=signum.name))
    (tmp_path / "f.feature").write_text('Feature: x\n  Scenario: y\n    Given scenario "y" works for 1 seconds\n')
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run", "f.feature", "--steps",
                           str(tmp_path / "selfsignal_steps.py"), "--reports", str(tmp_path / "r")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 128 + signum, done.stderr
    assert f"interrupted by {signum.name}" in done.stderr and "does not import" not in done.stderr, done.stderr


SWALLOWING_STEPS = """\
import os
import signal
import time

from pytest_bdd import given


@given("a wait that a signal's cleanup cuts short")
def cut_short():
    # what a wait sees when the signal's cleanup stopped the server under it and the interrupt
    # itself did not reach pytest (caught on the way, as library code may do)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:
        pass
    raise AssertionError("server not started")
"""


def test_a_step_failing_after_the_signal_reached_the_run_is_interrupted_not_an_error(tmp_path: Path):
    """Whatever a step raises once SIGINT/SIGTERM reached the run is the interrupt's doing: the run
    exits 143, the step and the run read INTERRUPTED, and no later scenario starts."""
    (tmp_path / "cut_steps.py").write_text(SWALLOWING_STEPS)
    (tmp_path / "cut.feature").write_text(
        "Feature: cut short\n  Scenario: first\n    Given a wait that a signal's cleanup cuts short\n\n"
        "  Scenario: second\n    Given a wait that a signal's cleanup cuts short\n")
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run", "cut.feature", "--steps",
                           str(tmp_path / "cut_steps.py"), "--reports", str(tmp_path / "r"), "--run-id", "r"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    journal = json.loads((tmp_path / "r" / "r" / "journal.json").read_text())
    assert done.returncode == 143, done.stdout + done.stderr
    assert journal["status"] == "interrupted" and journal["interrupted_by"] == "SIGTERM", journal["status"]
    [scenario] = journal["scenarios"]  # the second never started
    [step] = scenario["steps"]
    assert scenario["status"] == step["status"] == "interrupted"
    assert step["error"] == "interrupted by SIGTERM (the step then raised AssertionError: server not started)"


FINALIZER_STEPS = """\
import os
import signal
import time
from pathlib import Path

from pytest_bdd import given


class Connection:
    def __del__(self):
        # the signal lands while the main thread runs a finalizer (a socket, a subprocess, a
        # database connection being collected): Python drops whatever the handler raises there
        os.kill(os.getpid(), signal.SIGTERM)
        spin = 0
        for i in range(100_000):
            spin += i


def work_on(seconds=10, sleeps=0.05):
    # what the step does after the finalizer, in sleeps: it must never get to its mark
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(sleeps)
    Path(os.environ["GAMEDAY_TEST_MARKS"], "went-on").write_text("the step went on after the signal")


@given("a connection is collected when the signal comes, then the step works on")
def collected():
    Connection()
    work_on()


class Pool:
    def __del__(self):
        # collected with the connection, right after its finalizer and with no line of the step
        # in between: the interrupt's next delivery lands in here and is dropped a second time
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                pass
        except BaseException:
            Path(os.environ["GAMEDAY_TEST_MARKS"], "second-finalizer").write_text("delivered again in here")
            raise


@given("a connection is collected when the signal comes, then its pool's finalizer runs")
def pooled():
    connection = Connection()
    connection.pool = Pool()
    del connection
    work_on()


@given("a connection is collected when the signal comes, then the step blocks in one long wait")
def blocked():
    Connection()
    work_on(seconds=60, sleeps=60)  # one long wait
"""


@pytest.mark.parametrize("then", ["the step works on", "the step blocks in one long wait",
                                  "its pool's finalizer runs"])
def test_an_interrupt_that_lands_in_a_finalizer_still_stops_the_run(tmp_path: Path, then: str):
    """Python drops what a finalizer raises, so a signal handled inside one would let the step go
    on with its parts already cleaned up; the interrupt is delivered again outside it and the run
    stops at once, interrupted, with nothing after the finalizer run — also when the step has gone
    into one long blocking wait (a 60 s sleep) that only a real signal wakes, and when the delivery
    again lands in a second finalizer (it is dropped again, and delivered once more)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "final_steps.py").write_text(FINALIZER_STEPS)
    (tmp_path / "final.feature").write_text(
        "Feature: a finalizer\n  Scenario: first\n"
        f"    Given a connection is collected when the signal comes, then {then}\n\n"
        "  Scenario: second\n"
        f"    Given a connection is collected when the signal comes, then {then}\n")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run", "final.feature", "--steps",
                           str(tmp_path / "final_steps.py"), "--reports", str(tmp_path / "r"), "--run-id", "r"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "GAMEDAY_TEST_MARKS": str(marks)})
    took = time.monotonic() - began
    journal = json.loads((tmp_path / "r" / "r" / "journal.json").read_text())
    assert done.returncode == 143, done.stdout + done.stderr
    assert not (marks / "went-on").exists(), f"the step went on after the signal ({took:.1f} s)"
    assert "Exception ignored" not in done.stderr, done.stderr
    assert journal["status"] == "interrupted" and journal["interrupted_by"] == "SIGTERM", journal["status"]
    [scenario] = journal["scenarios"]  # the second never started
    [step] = scenario["steps"]
    assert scenario["status"] == step["status"] == "interrupted", step
    assert took < 30, f"the run stopped {took:.1f} s after it began: the interrupt waited for the step's wait"
    if then == "its pool's finalizer runs":
        assert (marks / "second-finalizer").exists(), "the delivery did not land in the pool's finalizer"
