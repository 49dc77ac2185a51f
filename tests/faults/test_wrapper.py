"""Faults as data: parse_fault, the image catalog's ``fault:``, and the fault wrapper in front
of a real HTTP service process (real processes, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gameday.errors import ConfigError
from gameday.faults import FAULT_ANNOTATION, FaultSpec, parse_fault, wrap_command
from gameday.images import ImageCatalog
from gameday.lifecycle import free_port, pid_alive, port_open

# A stand-in for any team's HTTP service: it knows nothing about faults.
SERVICE = '''
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if os.environ.get("CHILD_MARKER"):
    with open(os.environ["CHILD_MARKER"], "w") as f:
        f.write(str(os.getpid()))
time.sleep(float(os.environ.get("CHILD_DELAY", "0")))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are written apart

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/bye":  # answers as if kept alive, then closes (an idle keep-alive timeout)
            self.send(200, {"release": "1.0.0"})
            self.close_connection = True
        elif path == "/exit":
            self.send(200, {"exiting": int(query.partition("=")[2])})
            threading.Timer(0.1, os._exit, (int(query.partition("=")[2]),)).start()
        elif path in ("/health", "/ready", "/version"):
            self.send(200, {"release": "1.0.0", "path": path, "port": os.environ["PORT"],
                            "host": os.environ["HOST"], "team": os.environ.get("TEAM_SETTING")})
        else:
            self.send(404, {"error": "no such page"})

    do_HEAD = do_GET

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send(201, {"echo": body.decode()})

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("X-Release", "1.0.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
print("service listening on $PORT", os.environ["PORT"], flush=True)
server.serve_forever()
'''


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    marker: Path

    def get(self, conn: http.client.HTTPConnection, path: str, method: str = "GET",
            body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def child_pid(self) -> int:
        return int(self.marker.read_text())

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def service(tmp_path: Path) -> Path:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    return script


@pytest.fixture
def start(tmp_path: Path, service: Path) -> Iterator:
    started: list[Running] = []

    def run(fault: str, *, wait: bool = True, **env: str) -> Running:
        port = free_port()
        log, marker = tmp_path / f"wrapper-{len(started)}.log", tmp_path / f"child-{len(started)}.pid"
        command = [sys.executable, str(service)]
        argv = wrap_command(command, parse_fault(fault, where="test"), ready_path="/ready", live_path="/health")
        if argv == command:  # no fault: run the wrapper anyway, to prove it changes nothing
            argv = [sys.executable, "-m", "gameday.faults", "--fault", "", "--ready-path", "/ready",
                    "--live-path", "/health", "--", *command]
        full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "GAMEDAY_FAULT_SEED": "7",
                    "CHILD_MARKER": str(marker), "TEAM_SETTING": "kept", **env}
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        running = Running(proc, port, log, marker)
        started.append(running)
        if wait:
            deadline = time.monotonic() + 20
            while not port_open("127.0.0.1", port, timeout=0.2):
                assert proc.poll() is None, running.output()
                assert time.monotonic() < deadline, running.output()
                time.sleep(0.05)
        return running

    yield run
    for running in started:  # the wrapper's group holds the service too, even after the wrapper is gone
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.proc.pid, signal.SIGKILL)
        running.proc.wait(timeout=10)


def wait_exit(running: Running, timeout: float = 15) -> int:
    try:
        return running.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the wrapper did not exit: {running.output()}")


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- the wrapper in front of a real service -------------------------------------------------------------
def test_no_fault_passes_everything_through_unchanged(start) -> None:
    running = start("")
    conn = running.connect()  # one kept-alive connection for everything
    status, headers, body = running.get(conn, "/version")
    assert status == 200 and headers["x-release"] == "1.0.0" and headers["content-type"] == "application/json"
    served = json.loads(body)
    assert served["release"] == "1.0.0" and served["host"] == "127.0.0.1" and served["team"] == "kept"
    assert served["port"] != str(running.port)  # the service listens on its own port behind the wrapper
    assert running.get(conn, "/nothing-here")[:1] == (404,)
    status, headers, body = running.get(conn, "/orders", "POST", b'{"item": 1}')
    assert (status, headers["x-release"], json.loads(body)) == (201, "1.0.0", {"echo": '{"item": 1}'})
    status, headers, body = running.get(conn, "/version", "HEAD")
    assert (status, body, headers["x-release"]) == (200, b"", "1.0.0")
    assert "applying fault none" in running.output()


def test_many_connections_at_once_each_get_their_own_answers_fast(start) -> None:
    from concurrent.futures import ThreadPoolExecutor

    running = start("latency-ms=0,error-rate=0.01")

    def client(n: int) -> float:
        conn = running.connect()
        began = time.monotonic()
        for i in range(150):
            body = f"client {n} request {i}".encode()
            status, _, answer = running.get(conn, "/orders", "POST", body)
            assert status in (201, 500) and json.loads(answer) == {"echo": body.decode()}
        return 150 / (time.monotonic() - began)

    with ThreadPoolExecutor(4) as pool:
        rates = list(pool.map(client, range(4)))
    assert sum(rates) > 300, rates  # requests/s; was ~22 when head and body waited on delayed ACKs


def test_a_connection_the_service_closed_is_replaced(start) -> None:
    running = start("error-rate=0.01")
    conn = running.connect()
    for _ in range(20):
        assert running.get(conn, "/bye")[0] in (200, 500)
        assert running.get(conn, "/version")[0] in (200, 500)  # same client connection, a new one behind it


def test_error_rate_half_fails_about_half_and_each_500_still_names_the_release(start) -> None:
    running = start("error-rate=0.5")
    conn = running.connect()
    statuses = []
    for _ in range(400):
        status, headers, body = running.get(conn, "/version")
        statuses.append(status)
        assert headers["x-release"] == "1.0.0" and json.loads(body)["release"] == "1.0.0"
    assert set(statuses) == {200, 500}
    assert 0.35 <= statuses.count(500) / 400 <= 0.65
    assert {running.get(conn, path)[0] for path in ("/ready", "/health") for _ in range(20)} == {200}
    assert "applying fault error-rate=0.5" in running.output()


def test_error_rate_one_fails_every_request_but_the_probes(start) -> None:
    running = start("error-rate=1")
    conn = running.connect()
    assert {running.get(conn, "/version")[0] for _ in range(50)} == {500}
    status, headers, body = running.get(conn, "/orders", "POST", b"x")
    assert (status, headers["x-release"], json.loads(body)) == (500, "1.0.0", {"echo": "x"})
    assert {running.get(conn, path)[0] for path in ("/ready", "/health", "/ready?verbose=1")} == {200}


def test_a_fault_behind_a_flag_stops_when_the_flag_is_turned_off(start, tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "new-pricing").write_text("on")
    running = start("error-rate=1,flag=new-pricing", GAMEDAY_MOUNT_GAMEDAY_FLAGS=str(flags))
    conn = running.connect()
    assert [running.get(conn, "/version")[0] for _ in range(5)] == [500] * 5
    (flags / ".new-pricing.tmp").write_text("off")  # as the kubelet rewrites a ConfigMap key: atomically
    os.replace(flags / ".new-pricing.tmp", flags / "new-pricing")
    assert [running.get(conn, "/version")[0] for _ in range(5)] == [200] * 5  # the next request already
    (flags / "new-pricing").unlink()  # a flag nobody set is off
    assert running.get(conn, "/version")[0] == 200
    (flags / "new-pricing").write_text(" ON\n")
    assert running.get(conn, "/version")[0] == 500


def test_a_flagged_fault_without_the_flags_volume_stays_on_and_says_so(start) -> None:
    running = start("error-rate=1,flag=new-pricing")
    assert running.get(running.connect(), "/version")[0] == 500
    assert "no gameday-flags volume" in running.output()


def test_latency_is_added_to_requests_but_not_to_probes(start) -> None:
    running = start("latency-ms=200")
    conn = running.connect()
    running.get(conn, "/health")  # connected and warm

    def timed(path: str) -> float:
        began = time.monotonic()
        assert running.get(conn, path)[0] == 200
        return time.monotonic() - began

    assert min(timed("/version") for _ in range(3)) >= 0.2
    assert min(timed("/ready") for _ in range(3)) < 0.2


def test_never_ready_fails_the_readiness_path_only(start) -> None:
    running = start("never-ready")
    conn = running.connect()
    assert running.get(conn, "/ready")[0] == 503
    assert running.get(conn, "/version")[0] == 200
    assert running.get(conn, "/health")[0] == 200
    assert running.get(conn, "/ready")[0] == 503  # the connection stayed usable


def test_crash_on_start_exits_1_without_starting_the_service(start) -> None:
    running = start("crash-on-start", wait=False)
    assert wait_exit(running) == 1
    assert not running.marker.exists()  # the service never ran
    assert "crash-on-start" in running.output() and "exit 1" in running.output()


def test_connections_are_refused_until_the_service_accepts_them(start) -> None:
    running = start("error-rate=0.1", wait=False, CHILD_DELAY="1.5")
    deadline = time.monotonic() + 15
    while not running.marker.exists():  # the service has started but sleeps before listening
        assert time.monotonic() < deadline, running.output()
        time.sleep(0.02)
    assert not port_open("127.0.0.1", running.port, timeout=0.2)
    while not port_open("127.0.0.1", running.port, timeout=0.2):
        assert time.monotonic() < deadline, running.output()
        time.sleep(0.05)
    assert running.get(running.connect(), "/ready")[0] == 200


def test_sigterm_to_the_wrapper_stops_the_service(start) -> None:
    running = start("error-rate=0.5")
    child = running.child_pid()
    assert pid_alive(child)
    idle = running.connect()
    running.get(idle, "/ready")  # a kept-alive client connection, open at shutdown
    running.proc.send_signal(signal.SIGTERM)  # the wrapper alone, not its group
    assert wait_exit(running) == 128 + signal.SIGTERM  # the service died of the forwarded SIGTERM
    assert wait_dead(child)
    assert "killed by SIGTERM" in running.output() and "Traceback" not in running.output()


def test_the_service_dies_with_a_killed_wrapper(start) -> None:
    running = start("latency-ms=10")
    child = running.child_pid()
    running.proc.kill()
    running.proc.wait(timeout=10)
    assert wait_dead(child)


def test_the_wrapper_exits_with_the_service_exit_code(start) -> None:
    running = start("error-rate=0.5")
    assert running.get(running.connect(), "/exit?code=3")[0] in (200, 500)
    assert wait_exit(running) == 3
    assert "exited with code 3" in running.output()


def test_a_bad_fault_on_the_command_line_exits_2_with_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "gameday.faults", "--fault", "eror-rate=0.5", "--", "true"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--fault fault: unknown fault 'eror-rate'" in result.stderr


# -- parse_fault, describe, wrap_command -------------------------------------------------------------------
def test_text_and_mapping_give_the_same_fault() -> None:
    text = parse_fault("error-rate=0.5, latency-ms=400,crash-on-start,never-ready", where="t")
    assert parse_fault("error-rate=0.5,flag=new-pricing", where="t").describe() == "error-rate=0.5,flag=new-pricing"
    mapping = parse_fault({"error-rate": 0.5, "latency-ms": 400, "crash-on-start": True, "never-ready": True},
                          where="t")
    assert text == mapping == FaultSpec(error_rate=0.5, latency_ms=400, crash_on_start=True, never_ready=True)
    assert text.describe() == "error-rate=0.5,latency-ms=400,crash-on-start,never-ready"
    assert parse_fault(text.describe(), where="t") == text


def test_no_fault_is_falsy() -> None:
    for empty in (None, "", " , ", {}, {"crash-on-start": False, "error-rate": 0}):
        fault = parse_fault(empty, where="t")
        assert not fault and fault == FaultSpec() and fault.describe() == ""
    assert parse_fault("error-rate=1", where="t").describe() == "error-rate=1"
    assert parse_fault({"latency-ms": "250"}, where="t") == FaultSpec(latency_ms=250)
    assert FAULT_ANNOTATION == "gameday.io/fault"


@pytest.mark.parametrize(
    "value, words",
    [
        ("eror-rate=0.5", "unknown fault 'eror-rate' (did you mean 'error-rate'?)"),
        ("needs-column=orders.x", "unknown fault 'needs-column'"),
        ("error-rate=1.5", "error-rate=1.5 is outside 0..1"),
        ("error-rate=half", "error-rate needs a fraction"),
        ("error-rate", "error-rate needs a fraction between 0 and 1, e.g. error-rate=0.5 (got no value)"),
        ("latency-ms=-3", "latency-ms needs whole milliseconds"),
        ("latency-ms=1.5", "latency-ms needs whole milliseconds"),
        ("latency-ms=99999999", "latency-ms=99999999 is too large"),
        ("crash-on-start=yes", "crash-on-start is a flag"),
        ("never-ready,never-ready", "'never-ready' given twice"),
        ({"error-rate": True}, "error-rate needs a fraction"),
        ({"error-rate": 2}, "outside 0..1"),
        ({"latency-ms": 400.5}, "latency-ms needs whole milliseconds"),
        ({"never-ready": "yes"}, "never-ready is a flag"),
        ({"bogus": 1}, "unknown fault 'bogus'"),
        ("error-rate=0.5,flag", "flag needs the feature flag's name, e.g. flag=new-pricing (got no value)"),
        ("error-rate=0.5,flag=new pricing", "flag needs the feature flag's name"),
        ({"error-rate": 0.5, "flag": 3}, "flag needs the feature flag's name"),
        (["error-rate=0.5"], "must be text like 'error-rate=0.5' or a mapping, not list"),
    ],
)
def test_bad_faults_are_config_errors_naming_where_and_the_item(value, words: str) -> None:
    where = "images.yaml images[0] tag '2.0.0'"
    with pytest.raises(ConfigError) as caught:
        parse_fault(value, where=where)
    assert caught.value.message.startswith(f"{where} fault: ")
    assert words in caught.value.message
    assert caught.value.fix == "use error-rate=F, latency-ms=N, crash-on-start, never-ready, flag=NAME"


def test_wrap_command() -> None:
    argv = ["node", "server.js"]
    assert wrap_command(argv, FaultSpec()) == argv
    assert wrap_command(argv, FaultSpec(error_rate=0.5), ready_path="/ready") == [
        sys.executable, "-m", "gameday.faults", "--fault", "error-rate=0.5", "--ready-path", "/ready", "--", *argv]
    assert wrap_command(argv, FaultSpec(never_ready=True), ready_path="/ready", live_path="/healthz")[3:] == [
        "--fault", "never-ready", "--ready-path", "/ready", "--live-path", "/healthz", "--", *argv]


# -- the image catalog --------------------------------------------------------------------------------------
CATALOG = """
images:
  - repository: shop/checkout-api
    command: ["node", "{dir}/server.js", "--tag={tag}"]
    port: 8080
    tags:
      "1.0.0": {env: {APP_VERSION: "1.0.0"}}
      "1.1.0-bad": {env: {APP_VERSION: "1.1.0-bad"}, fault: "error-rate=0.5"}
      "1.2.0-slow": {fault: {latency-ms: 400, never-ready: true}}
"""


def test_the_catalog_carries_faults_and_resolves_dir(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    path = tmp_path / "team" / "images.yaml"
    path.write_text(CATALOG)
    catalog = ImageCatalog()
    catalog.add_file(tmp_path / "team" / ".." / "team" / "images.yaml")
    good = catalog.resolve("registry.local/shop/checkout-api:1.0.0")
    assert good.argv == ["node", f"{path.parent.resolve()}/server.js", "--tag=1.0.0"]
    assert not good.fault and good.env == {"APP_VERSION": "1.0.0"}
    assert catalog.resolve("shop/checkout-api:1.1.0-bad").fault == FaultSpec(error_rate=0.5)
    assert catalog.resolve("checkout-api:1.2.0-slow").fault == FaultSpec(latency_ms=400, never_ready=True)


def test_a_pruned_image_is_not_served_but_still_known(tmp_path: Path) -> None:
    from gameday.cluster.access import image_missing
    from gameday.images import ImageNotFound

    path = tmp_path / "images.yaml"
    path.write_text(CATALOG)
    catalog = ImageCatalog()
    catalog.add_file(path)
    catalog.prune("registry.local/shop/checkout-api:1.0.0")
    with pytest.raises(ImageNotFound, match="pruned from the registry"):
        catalog.resolve("shop/checkout-api:1.0.0")  # the kubelet's pull: ErrImagePull
    assert catalog.resolve("shop/checkout-api:1.1.0-bad")  # other tags still served
    assert image_missing(catalog, "shop/checkout-api:1.0.0") is None  # a feature may still name it
    catalog.unprune("checkout-api:1.0.0")
    assert catalog.resolve("shop/checkout-api:1.0.0").env == {"APP_VERSION": "1.0.0"}


def test_a_bad_fault_in_a_catalog_file_names_file_entry_and_tag(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(CATALOG.replace("error-rate=0.5", "eror-rate=0.5"))
    with pytest.raises(ConfigError) as caught:
        ImageCatalog().add_file(path)
    assert caught.value.message.startswith(f"{path} images[0] tag '1.1.0-bad' fault: unknown fault 'eror-rate'")


def test_add_entries_takes_parsed_yaml_from_a_project_file(tmp_path: Path) -> None:
    import yaml

    project = tmp_path / "gameday.yaml"
    catalog = ImageCatalog()
    catalog.add_entries(yaml.safe_load(CATALOG)["images"], project)
    assert catalog.resolve("shop/checkout-api:1.0.0").argv[1] == f"{tmp_path.resolve()}/server.js"
    with pytest.raises(ConfigError, match=r"gameday.yaml images\[0\] tag '1.0.0' fault: latency-ms"):
        catalog.add_entries([{"repository": "a", "command": ["a"], "tags": {"1.0.0": {"fault": "latency-ms"}}}],
                            project)
    with pytest.raises(ConfigError, match="must be a list"):
        catalog.add_entries({"repository": "a"}, project)  # type: ignore[arg-type]


def test_the_shipped_catalog_still_loads_without_harness_faults() -> None:
    catalog = ImageCatalog.load()
    spec = catalog.resolve("gameday/demo:2.0.0-errors")
    assert not spec.fault and spec.env["DEMO_FAULT"] == "error-rate=0.5"
