"""The demo service as a real process on a 127.x address: endpoints, fault modes, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from gameday.demo.process import DemoProcess, Reply


@pytest.fixture(scope="module")
def healthy() -> DemoProcess:
    with DemoProcess(version="1.4.2") as demo:
        yield demo


def assert_version(reply: Reply, version: str) -> None:
    assert reply.headers["x-served-by-version"] == version
    if reply.headers["content-type"].startswith("application/json"):
        assert reply.json()["version"] == version


def test_health_ready_version(healthy: DemoProcess) -> None:
    for path in ("/health", "/ready", "/version"):
        reply = healthy.request("GET", path)
        assert reply.status == 200, path
        assert_version(reply, "1.4.2")
    info = healthy.request("GET", "/version").json()
    assert info == {"version": "1.4.2", "backend": "memory", "faults": []}


def test_orders_api_in_memory(healthy: DemoProcess) -> None:
    created = healthy.request("POST", "/api/orders", {"customer": "ada", "amount_cents": 1250})
    assert created.status == 201
    order = created.json()["order"]
    assert (order["customer"], order["amount_cents"]) == ("ada", 1250)
    fetched = healthy.request("GET", f"/api/orders/{order['id']}")
    assert fetched.status == 200 and fetched.json()["order"] == order
    listed = healthy.request("GET", "/api/orders?limit=1").json()["orders"]
    assert listed == [order]
    assert healthy.request("GET", "/api/orders/999999").status == 404


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/api/orders", b"{not json", 400),
        ("POST", "/api/orders", {"customer": "", "amount_cents": 1}, 400),
        ("POST", "/api/orders", {"customer": "x", "amount_cents": "12"}, 400),
        ("GET", "/api/orders?limit=0", None, 400),
        ("GET", "/api/orders?limit=abc", None, 400),
        ("GET", "/nowhere", None, 404),
        ("POST", "/health", {}, 405),
        ("PUT", "/api/orders", {}, 501),  # answered by http.server itself
    ],
)
def test_bad_requests_still_carry_the_version(healthy: DemoProcess, method: str, path: str, body: object,
                                              status: int) -> None:
    reply = healthy.request(method, path, body)
    assert reply.status == status
    assert_version(reply, "1.4.2")
    assert "error" in reply.json()


def test_metrics_count_requests_by_path_status_version(healthy: DemoProcess) -> None:
    for _ in range(3):
        healthy.request("GET", "/api/orders/424242")  # 404 each time
    text = healthy.request("GET", "/metrics").body.decode()
    line = 'demo_requests_total{path="/api/orders/{id}",method="GET",status="404",version="1.4.2"}'
    counted = [row for row in text.splitlines() if row.startswith(line)]
    assert counted and int(counted[0].split()[-1]) >= 3
    assert 'demo_request_duration_seconds_bucket{path="/api/orders/{id}",version="1.4.2",le="+Inf"}' in text
    assert "# TYPE demo_request_duration_seconds histogram" in text


def test_error_rate_fault_fails_that_share_of_api_requests_only() -> None:
    with DemoProcess(version="2.0.0-errors", fault="error-rate=0.5") as demo:
        statuses = [demo.request("GET", "/api/orders").status for _ in range(200)]
        health = {demo.request("GET", "/health").status for _ in range(20)}
        sample = demo.request("GET", "/api/orders")
    share = statuses.count(500) / len(statuses)
    assert 0.3 <= share <= 0.7, share  # 200 at 50 %: outside this once in 1.6e8 runs
    assert set(statuses) == {200, 500}
    assert health == {200}
    assert_version(sample, "2.0.0-errors")


def test_latency_fault_delays_api_requests_only() -> None:
    with DemoProcess(version="2.0.0-slow", fault="latency-ms=300") as demo:
        def timed(path: str) -> float:
            began = time.perf_counter()
            assert demo.request("GET", path).status == 200
            return time.perf_counter() - began

        api = sorted(timed("/api/orders") for _ in range(5))
        health = sorted(timed("/health") for _ in range(5))
    assert api[0] >= 0.3
    assert health[2] < 0.3


def _run_demo(env: dict[str, str], timeout: float = 10) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", **env}
    return subprocess.run([sys.executable, "-m", "gameday.demo"], env=full, capture_output=True, text=True,
                          timeout=timeout)


def test_crash_on_start_exits_1_with_a_startup_error() -> None:
    done = _run_demo({"DEMO_VERSION": "2.0.0-crash", "DEMO_FAULT": "crash-on-start"})
    assert done.returncode == 1
    assert "startup failed" in done.stderr


@pytest.mark.parametrize("fault", ["error-rate=2", "explode", "latency-ms=fast"])
def test_bad_fault_exits_2_with_one_line(fault: str) -> None:
    done = _run_demo({"DEMO_FAULT": fault})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo: DEMO_FAULT:"), done.stderr


def test_never_ready_keeps_ready_503_and_health_200() -> None:
    with DemoProcess(version="2.0.0-unready", fault="never-ready") as demo:
        readies = {demo.request("GET", "/ready").status for _ in range(5)}
        ready = demo.request("GET", "/ready")
        health = demo.request("GET", "/health")
    assert readies == {503}
    assert health.status == 200
    assert_version(ready, "2.0.0-unready")


def test_needs_column_without_database_is_unready_and_names_the_column() -> None:
    with DemoProcess(version="2.0.0-needs-column", fault="needs-column=orders.discount_cents") as demo:
        ready = demo.request("GET", "/ready")
        created = demo.request("POST", "/api/orders", {"customer": "a", "amount_cents": 1})
    assert ready.status == 503 and "orders.discount_cents" in ready.json()["reason"]
    assert created.status == 500 and "orders.discount_cents" in created.json()["error"]


def test_sigterm_finishes_in_flight_request_then_exits_0() -> None:
    demo = DemoProcess(version="3.0.0", fault="latency-ms=600").start()
    proc = demo.proc
    result: dict[str, object] = {}

    def slow_request() -> None:
        result["reply"] = demo.request("GET", "/api/orders", timeout=10)

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.2)  # the request is now sleeping inside the service
    os.kill(proc.pid, signal.SIGTERM)
    code = proc.wait(timeout=5)
    worker.join(timeout=5)
    demo.stop()
    assert code == 0
    reply = result["reply"]
    assert isinstance(reply, Reply) and reply.status == 200
    assert_version(reply, "3.0.0")
