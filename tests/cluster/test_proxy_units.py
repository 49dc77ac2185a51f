"""The service proxy's routing table and weighted picking, from plain API objects (no I/O); and
its HTTP path with pooled backend connections, against real HTTP servers on 127.0.0.1 (no cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gameday.cluster.proxy import ServiceProxy
from gameday.cluster.proxy_http import BackendPool
from gameday.cluster.proxy_routes import (
    Destination,
    Route,
    WeightedPicker,
    build_routes,
    resolve_host,
    virtual_service_routes,
)
from gameday.lifecycle import wait_until


def _service(name: str, port: int = 80, port_name: str = "http") -> dict:
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"ports": [{"name": port_name, "port": port, "targetPort": 8080, "protocol": "TCP"}]}}


def _slice(service: str, endpoints: list[tuple[str, str, bool]], port_name: str = "http") -> dict:
    return {"metadata": {"namespace": "default", "name": f"{service}-abc",
                         "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": port_name, "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}}
                          for pod, ip, ready in endpoints]}


def _pod(name: str, ip: str, local: str | None) -> dict:
    annotations = {"gameday.io/local-address": f"{local}:8080"} if local else {}
    return {"metadata": {"namespace": "default", "name": name, "annotations": annotations},
            "status": {"podIPs": [{"ip": ip}]}}


def _vs(host: str, routes: list[tuple[str, int | None]]) -> dict:
    return {"metadata": {"namespace": "default", "name": f"{host}-vs", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"hosts": [host], "http": [{"route": [
                {"destination": {"host": dest}, **({"weight": w} if w is not None else {})} for dest, w in routes]}]}}


PODS = [_pod("a", "198.18.0.1", "127.50.0.1"), _pod("b", "198.18.0.2", "127.50.0.2"),
        _pod("c", "198.18.0.3", "127.50.0.3"), _pod("outside", "10.0.0.9", None)]


def test_ready_endpoints_are_translated_to_local_addresses_only() -> None:
    slices = [_slice("demo", [("a", "198.18.0.1", True), ("b", "198.18.0.2", False),
                              ("outside", "10.0.0.9", True)])]
    routes = build_routes([_service("demo")], slices, PODS, [])
    (dest,) = routes["default/demo:80"].destinations
    # b is not ready; "outside" has no local address and is never dialled
    assert dest.backends == (("127.50.0.1", 8080),)


def test_selector_switch_shows_as_new_backends() -> None:
    blue = build_routes([_service("demo")], [_slice("demo", [("a", "198.18.0.1", True)])], PODS, [])
    green = build_routes([_service("demo")], [_slice("demo", [("c", "198.18.0.3", True)])], PODS, [])
    assert blue["default/demo:80"].eligible() == {("127.50.0.1", 8080)}
    assert green["default/demo:80"].eligible() == {("127.50.0.3", 8080)}


def test_virtual_service_weights_split_connections_exactly() -> None:
    services = [_service("demo"), _service("demo-stable"), _service("demo-canary")]
    slices = [_slice("demo-stable", [("a", "198.18.0.1", True), ("b", "198.18.0.2", True)]),
              _slice("demo-canary", [("c", "198.18.0.3", True)])]
    vs = _vs("demo", [("demo-stable", 80), ("demo-canary.default.svc.cluster.local", 20)])
    route = build_routes(services, slices, PODS, [vs])["default/demo:80"]
    picker = WeightedPicker()
    picks = [picker.pick(route) for _ in range(100)]
    by_service = Counter(dest.service for dest, _ in picks)
    assert by_service == {"default/demo-stable": 80, "default/demo-canary": 20}
    stable_backends = Counter(backend for dest, backend in picks if dest.service == "default/demo-stable")
    assert stable_backends == {("127.50.0.1", 8080): 40, ("127.50.0.2", 8080): 40}
    drained = build_routes(services, slices, PODS, [_vs("demo", [("demo-stable", 100), ("demo-canary", 0)])])
    assert drained["default/demo:80"].eligible() == {("127.50.0.1", 8080), ("127.50.0.2", 8080)}


def test_a_weighted_destination_without_endpoints_still_takes_its_share() -> None:
    services = [_service("demo"), _service("demo-canary")]
    route = build_routes(services, [_slice("demo", [("a", "198.18.0.1", True)])], PODS,
                         [_vs("demo", [("demo", 50), ("demo-canary", 50)])])["default/demo:80"]
    picker = WeightedPicker()
    assert Counter(backend is None for _, backend in (picker.pick(route) for _ in range(10))) == {True: 5, False: 5}


def test_istio_host_names_resolve_to_services() -> None:
    assert resolve_host("demo", "shop") == "shop/demo"
    assert resolve_host("demo.other", "shop") == "other/demo"
    assert resolve_host("demo.other.svc.cluster.local", "shop") == "other/demo"
    hosts, routes = virtual_service_routes(_vs("demo", [("demo-stable", None)]))
    assert hosts == ["default/demo"] and routes == [("default/demo-stable", None, None)]


# -- the HTTP path: pooled backend connections ---------------------------------------------

class Backend:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 that counts the TCP connections it accepts.

    Paths: ``/chunked`` answers chunked, ``/empty`` 204, ``/bye`` says ``Connection: close`` but
    leaves the socket open (so only a proxy that reads the header stops using it).
    ``hang_up_once``: the next request that arrives on an already used connection is read, then
    the connection is closed unanswered (the backend closed it just as the proxy sent)."""

    def __init__(self, name: str, *, nagle: bool = False) -> None:
        self.name = name
        self.accepted = 0
        self.open: set[socket.socket] = set()
        self.requests: list[tuple[str, str]] = []
        self.hang_up_once = False
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = not nagle  # nagle: writes head and body as Python's default does
            served = 0

            def setup(self) -> None:
                super().setup()
                with backend.lock:
                    backend.accepted += 1
                    backend.open.add(self.connection)

            def finish(self) -> None:
                with backend.lock:
                    backend.open.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_HEAD(self) -> None:
                self._serve()

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.served += 1
                with backend.lock:
                    backend.requests.append((self.command, self.path))
                    hang_up = backend.hang_up_once and self.served > 1
                    if hang_up:
                        backend.hang_up_once = False
                if hang_up:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = f"{backend.name} {self.command} {self.path} {len(body)}".encode()
                if self.path == "/empty":
                    self.send_response(204)
                    self.send_header("X-Backend", backend.name)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Backend", backend.name)
                if self.path == "/chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    half = len(payload) // 2
                    for part in (payload[:half], payload[half:], b""):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    return
                self.send_header("Content-Length", str(len(payload)))
                if self.path == "/bye":
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                self.close_connection = False  # even after /bye: only the header says close

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = ("127.0.0.1", int(self.server.server_address[1]))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def open_count(self) -> int:
        with self.lock:
            return len(self.open)

    def close_idle(self) -> None:
        """Close every connection from this side, as a pod that is killed does."""
        with self.lock:
            sockets = list(self.open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        wait_until(lambda: self.open_count() == 0, timeout=5, interval=0.01, what=f"{self.name} closing")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            sockets = list(self.open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    started = {name: Backend(name) for name in ("a", "b")}
    yield started
    for backend in started.values():
        backend.stop()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ServiceProxy]:
    served = ServiceProxy(tmp_path / "kubeconfig", install_crd=False)
    yield served
    served.stop()


KEY = "default/demo:80"


def route(*destinations: tuple[Backend, int]) -> dict[str, Route]:
    return {KEY: Route(KEY, [Destination(f"default/{b.name}", 80, weight, (b.address,)) for b, weight in destinations],
                       weighted=len(destinations) > 1)}


def listener(proxy: ServiceProxy) -> tuple[str, int]:
    host, _, port = proxy.services()[KEY].rpartition(":")
    return host, int(port)


def get(conn: http.client.HTTPConnection, path: str = "/", method: str = "GET", body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, str, bytes, http.client.HTTPResponse]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, response.getheader("X-Backend") or "?", data, response


def test_one_backend_connection_serves_a_keep_alive_clients_requests(backends: dict[str, Backend],
                                                                    proxy: ServiceProxy) -> None:
    a = backends["a"]
    proxy.serve(route((a, 100)))
    conn = http.client.HTTPConnection(*listener(proxy), timeout=5)
    seen = [get(conn, "/")[:3] for _ in range(5)]
    seen += [get(conn, "/chunked")[:3], get(conn, "/empty")[:3], get(conn, "/", method="HEAD")[:3],
             get(conn, "/post", method="POST", body=b"x" * 1000)[:3], get(conn, "/")[:3]]
    conn.close()
    # every response whole and in step (chunked, 204 and HEAD included) ...
    assert seen[:5] == [(200, "a", b"a GET / 0")] * 5
    assert seen[5:] == [(200, "a", b"a GET /chunked 0"), (204, "a", b""), (200, "a", b""),
                        (200, "a", b"a POST /post 1000"), (200, "a", b"a GET / 0")]
    # ... over one backend connection, which stays open, idle in the pool
    assert a.accepted == 1 and len(a.requests) == 10
    assert a.open_count() == 1


def test_short_client_connections_share_pooled_backend_connections(backends: dict[str, Backend],
                                                                  proxy: ServiceProxy) -> None:
    a = backends["a"]
    proxy.serve(route((a, 100)))
    for _ in range(10):  # each a new client connection asking to close, as the load generator's short ones
        conn = http.client.HTTPConnection(*listener(proxy), timeout=5)
        status, _, _, response = get(conn, "/", headers={"Connection": "close"})
        assert status == 200 and response.will_close  # the client's own connection does close
        conn.close()
    assert a.accepted == 1 and len(a.requests) == 10


def test_a_pooled_connection_the_backend_closed_is_no_client_error(backends: dict[str, Backend],
                                                                   proxy: ServiceProxy) -> None:
    a = backends["a"]
    proxy.serve(route((a, 100)))
    conn = http.client.HTTPConnection(*listener(proxy), timeout=5)
    assert [get(conn)[0] for _ in range(3)] == [200] * 3
    assert a.accepted == 1
    for closed in range(1, 6):
        a.close_idle()  # the pod went away while the connection sat idle in the pool
        # noticed before sending: even a POST (not idempotent) goes out on a fresh connection, once
        assert get(conn, "/order", method="POST", body=b"{}")[:3] == (200, "a", b"a POST /order 2")
        assert get(conn)[0] == 200
        assert a.accepted == 1 + closed and a.requests.count(("POST", "/order")) == closed


def test_a_backend_closing_as_the_request_is_sent_gets_an_idempotent_request_resent(
        backends: dict[str, Backend], proxy: ServiceProxy) -> None:
    a = backends["a"]
    proxy.serve(route((a, 100)))
    conn = http.client.HTTPConnection(*listener(proxy), timeout=5)
    assert get(conn)[0] == 200
    a.hang_up_once = True  # the pooled connection passes every check, then dies unanswered
    assert get(conn, "/again")[:2] == (200, "a")
    assert a.requests.count(("GET", "/again")) == 2 and a.accepted == 2
    # a POST is never sent twice: the failure reaches the client, as it would without a pool
    a.hang_up_once = True
    with pytest.raises((http.client.HTTPException, OSError)):
        get(conn, "/pay", method="POST", body=b"{}")
    conn.close()
    assert a.requests.count(("POST", "/pay")) == 1
    conn = http.client.HTTPConnection(*listener(proxy), timeout=5)
    assert get(conn)[0] == 200  # and the proxy serves on
    conn.close()


def test_selector_switch_and_weights_apply_to_the_next_request_with_pooled_connections(
        backends: dict[str, Backend], proxy: ServiceProxy) -> None:
    a, b = backends["a"], backends["b"]
    proxy.serve(route((a, 50), (b, 50)))
    conn = http.client.HTTPConnection(*listener(proxy), timeout=5)
    split = Counter(get(conn)[1] for _ in range(10))
    assert split == {"a": 5, "b": 5}  # per request, on one client connection ...
    assert a.accepted == 1 and b.accepted == 1  # ... each backend over one pooled connection
    proxy.serve(route((a, 0), (b, 100)))  # a weight change: the very next request follows it
    assert [get(conn)[1] for _ in range(4)] == ["b"] * 4
    # a backend that takes no traffic keeps no pooled connection
    wait_until(lambda: a.open_count() == 0, timeout=5, interval=0.01, what="a's pooled connection closed")
    proxy.serve(route((a, 100)))  # a selector switch: b leaves the Service
    assert [get(conn)[1] for _ in range(4)] == ["a"] * 4
    wait_until(lambda: b.open_count() == 0, timeout=5, interval=0.01, what="b's pooled connection closed")
    assert a.accepted == 2 and b.accepted == 1  # a: once before its weight went to 0, once after
    conn.close()


def test_connection_close_from_the_backend_is_honoured(backends: dict[str, Backend], proxy: ServiceProxy) -> None:
    a = backends["a"]
    proxy.serve(route((a, 100)))
    conn = http.client.HTTPConnection(*listener(proxy), timeout=5)
    assert [get(conn)[0] for _ in range(2)] == [200, 200] and a.accepted == 1
    status, _, _, response = get(conn, "/bye")
    assert status == 200 and response.will_close  # relayed: the client's connection closes too
    # the backend said close (though it left its socket open): that connection is not used again
    assert [get(conn)[0] for _ in range(3)] == [200] * 3  # http.client reconnects
    assert a.accepted == 2
    conn.close()


def test_stopping_the_proxy_closes_every_connection(backends: dict[str, Backend], tmp_path: Path) -> None:
    a, b = backends["a"], backends["b"]
    proxy = ServiceProxy(tmp_path / "kubeconfig", install_crd=False)
    proxy.serve(route((a, 50), (b, 50)))
    clients = [http.client.HTTPConnection(*listener(proxy), timeout=5) for _ in range(3)]
    for conn in clients:
        assert [get(conn)[0] for _ in range(2)] == [200, 200]
    assert a.open_count() + b.open_count() >= 2  # idle in the pool between requests
    proxy.stop()
    wait_until(lambda: a.open_count() + b.open_count() == 0, timeout=5, interval=0.01,
               what="the backends seeing every pooled connection closed")
    for conn in clients:
        assert conn.sock is not None and conn.sock.recv(1) == b""  # the clients' connections closed too
        conn.close()
    assert proxy.pool.idle() == 0 and proxy.pool.busy() == 0


def test_the_pool_keeps_few_idle_connections_and_not_for_long(backends: dict[str, Backend]) -> None:
    a, b = backends["a"], backends["b"]

    async def scenario() -> None:
        pool = BackendPool(max_idle=2, idle_timeout=0.3)
        taken = [await pool.acquire([a.address]) for _ in range(4)]
        assert all(taken) and pool.opened == 4 and pool.busy() == 4
        for upstream in taken:
            assert upstream is not None
            pool.release(upstream, reusable=True)
        assert pool.idle(a.address) == 2  # beyond the bound: closed
        assert await pool.acquire([a.address]) is taken[3]  # the most recent first
        pool.release(taken[3], reusable=False)  # e.g. an unfinished response: closed
        assert pool.idle(a.address) == 1
        other = await pool.acquire([b.address])
        assert other is not None
        pool.release(other, reusable=True)
        pool.retain({b.address})  # a left the routing table
        assert pool.idle(a.address) == 0 and pool.idle(b.address) == 1
        await asyncio.sleep(0.4)
        pool.prune()  # idle past the timeout
        assert pool.idle() == 0
        # a refused connect falls back to the next candidate
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            refused = ("127.0.0.1", unused.getsockname()[1])
            upstream = await pool.acquire([refused, a.address])
        assert upstream is not None and upstream.address == a.address
        pool.close()

    asyncio.run(scenario())
    # the server side counts a connection once its thread runs: wait for all 4 + 1 + 1 of them
    wait_until(lambda: (a.accepted, b.accepted) == (5, 1) and a.open_count() + b.open_count() == 0,
               timeout=5, interval=0.01, what="every connection accepted and closed")


def test_a_pooled_connection_adds_no_delayed_ack_stall_to_a_backend_that_keeps_nagle(proxy: ServiceProxy) -> None:
    """A stdlib server without TCP_NODELAY writes head and body apart; on a reused connection the
    body waits for the proxy's (delayed) ACK of the head: ~40 ms per request unless the proxy ACKs
    at once, as it would on a fresh connection."""
    backend = Backend("slowack", nagle=True)
    try:
        proxy.serve(route((backend, 100)))
        conn = http.client.HTTPConnection(*listener(proxy), timeout=10)
        stalled = 0
        for _ in range(40):
            began = time.perf_counter()
            status, _, _, _ = get(conn)
            stalled += time.perf_counter() - began >= 0.035
            assert status == 200
        conn.close()
        assert backend.accepted == 1  # the same pooled connection served them all
        assert stalled < 10, f"{stalled} of 40 requests took >= 35 ms (the delayed-ACK stall)"
    finally:
        backend.stop()
