"""The service path: keep-alive HTTP straight to a demo pod against the same through the service proxy.

    python benchmarks/service_path.py [--requests 3000] [--connections 2] [--seconds 3] [--path /health]

Starts the real demo service (``python -m gameday.demo``, in-memory store) on a 127.x
address and the cluster's ServiceProxy (its HTTP path, per-request balancing, pooled
backend connections) in a process of its own with a fixed route to it, no control plane.
A closed-loop client (plain sockets, TCP_NODELAY, 1-4 keep-alive connections, one thread
each) sends ``--requests`` GETs per target, or for ``--seconds`` at most, after a short
warm-up, and prints requests/s and p50/p99 latency for:

  * direct to the demo pod,
  * through the proxy, pooled backend connections (as it runs now),
  * through the proxy with its pool off (a fresh backend connection per request, as before),

and the ratios proxy/direct.  A p50 near 40 ms is the delayed-ACK stall the issue was about.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from gameday.demo.process import DemoProcess
from gameday.lifecycle import run_cleanups

KEY = "default/demo:80"
WARM_UP = 100


@dataclass
class Figures:
    requests: int
    seconds: float
    latencies: list[float]
    reconnects: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else float("nan")


class KeepAliveClient:
    """One keep-alive connection, one request at a time (Content-Length responses)."""

    def __init__(self, address: tuple[str, int], path: str) -> None:
        self.address = address
        self.request = f"GET {path} HTTP/1.1\r\nHost: demo\r\nUser-Agent: service-path-bench\r\n\r\n".encode()
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.reconnects = -1

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""
        self.reconnects += 1
        return sock

    def _recv(self, sock: socket.socket) -> None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-response")
        self.buffer += data

    def get(self) -> None:
        sock = self.sock or self._connect()
        sock.sendall(self.request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._recv(sock)
        head, self.buffer = self.buffer[:end].decode("latin-1").lower(), self.buffer[end + 4:]
        if not head.startswith("http/1.1 200"):
            raise RuntimeError(f"unexpected response: {head.splitlines()[0]}")
        length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.startswith("content-length:"))
        while len(self.buffer) < length:
            self._recv(sock)
        self.buffer = self.buffer[length:]
        if "connection: close" in head:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def drive(address: tuple[str, int], path: str, requests: int, connections: int, seconds: float) -> Figures:
    clients = [KeepAliveClient(address, path) for _ in range(connections)]
    for client in clients:
        for _ in range(WARM_UP // connections):
            client.get()
    latencies: list[list[float]] = [[] for _ in clients]
    share = requests // connections
    deadline = time.perf_counter() + seconds
    errors: list[BaseException] = []

    def run(client: KeepAliveClient, into: list[float]) -> None:
        try:
            for _ in range(share):
                began = time.perf_counter()
                client.get()
                into.append(time.perf_counter() - began)
                if began > deadline:
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(clients, latencies, strict=True)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for client in clients:
        client.close()
    if errors:
        raise RuntimeError(f"{len(errors)} client connection(s) failed: {errors[0]!r}")
    done = [x for per in latencies for x in per]
    return Figures(len(done), elapsed, done, sum(c.reconnects for c in clients))


def serve_proxy(backend: tuple[str, int], pooled: bool, workdir: str, conn: Connection) -> None:
    """Child process: the ServiceProxy with one fixed route to ``backend``; reports its listener,
    waits for the word to stop, then reports the pool's counters."""
    from gameday.cluster.proxy import ServiceProxy
    from gameday.cluster.proxy_routes import Destination, Route

    proxy = ServiceProxy(Path(workdir) / "kubeconfig", install_crd=False)
    try:
        proxy.serve({KEY: Route(KEY, [Destination("default/demo", 80, 100, (backend,))])})
        if not pooled:
            proxy.pool.max_idle = 0  # every connection closed after its response: a fresh one per request
        host, _, port = proxy.services()[KEY].rpartition(":")
        conn.send((host, int(port)))
        conn.recv()
        conn.send((proxy.pool.opened, proxy.pool.reused))
    finally:
        proxy.stop()


def through_proxy(backend: tuple[str, int], pooled: bool, args: argparse.Namespace) -> tuple[Figures, tuple[int, int]]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    with tempfile.TemporaryDirectory(prefix="gameday-bench-proxy-") as workdir:
        child = context.Process(target=serve_proxy, args=(backend, pooled, workdir, theirs), daemon=True)
        child.start()
        try:
            if not ours.poll(30):
                raise RuntimeError("the proxy process did not start within 30 s")
            address = ours.recv()
            figures = drive(address, args.path, args.requests, args.connections, args.seconds)
            ours.send("stop")
            counters = ours.recv() if ours.poll(10) else (-1, -1)
        finally:
            child.join(timeout=15)
            if child.is_alive():
                child.kill()
                child.join()
    return figures, counters


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per target (100-100000)")
    parser.add_argument("--connections", type=int, default=2, help="keep-alive client connections (1-4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="at most this long per target (0.5-30)")
    parser.add_argument("--path", default="/health", help="the demo path to GET")
    args = parser.parse_args()
    args.requests = max(100, min(args.requests, 100_000))
    args.connections = max(1, min(args.connections, 4))
    args.seconds = max(0.5, min(args.seconds, 30.0))
    try:
        with DemoProcess(version="bench") as demo:
            assert demo.port is not None
            backend = (demo.host, demo.port)
            direct = drive(backend, args.path, args.requests, args.connections, args.seconds)
            pooled, (opened, reused) = through_proxy(backend, True, args)
            fresh, (fresh_opened, _) = through_proxy(backend, False, args)
    finally:
        run_cleanups()
    print(f"service path: GET {args.path} on the demo service, {args.connections} keep-alive client connection(s), "
          f"{args.requests} requests or {args.seconds:g} s per target, after {WARM_UP} warm-up")
    print(f"({os.cpu_count()} cores shared by client, proxy and demo; load average {os.getloadavg()[0]:.1f})")
    print(f"  {'':38} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
    rows = [("direct to the demo pod", direct, ""),
            ("through the proxy (pooled)", pooled, f"backend connections opened {opened}, reused {reused} times"),
            ("through the proxy, pool off (before)", fresh, f"backend connections opened {fresh_opened}")]
    for label, figures, note in rows:
        print(f"  {label:38} {figures.rate:8.0f} {figures.percentile(0.5):8.2f} {figures.percentile(0.99):8.2f} "
              f"{figures.requests:9d}  {note}")
    print(f"  ratio proxy/direct: throughput {pooled.rate / direct.rate:.2f}, "
          f"p50 latency {pooled.percentile(0.5) / direct.percentile(0.5):.2f}x, "
          f"p99 latency {pooled.percentile(0.99) / direct.percentile(0.99):.2f}x "
          f"(pool off: throughput {fresh.rate / direct.rate:.2f})")
    if max(direct.percentile(0.5), pooled.percentile(0.5)) > 20:
        print("  WARNING: a p50 above 20 ms looks like a delayed-ACK stall (Nagle on a keep-alive response)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
