"""The demo service: a small threaded HTTP server whose releases can be broken on purpose.

Every response carries ``X-Served-By-Version`` and every JSON body a ``version`` field,
so the load generator knows which release answered each request.  Routes are a table
(method, pattern) -> handler; faults that hit the API (error rate, latency) wrap it.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeGuard
from urllib.parse import parse_qs, urlsplit

from gameday.demo.faults import Faults
from gameday.demo.metrics import Metrics
from gameday.demo.store import MissingColumn, OrderStore, StoreError, StoreUnavailable

MAX_BODY = 64 * 1024


@dataclass
class Response:
    status: int
    body: dict[str, Any] | str
    content_type: str = "application/json"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    params: dict[str, str]
    body: bytes


@dataclass
class App:
    """What the handlers share: version, faults, store, metrics and the draining flag."""

    version: str
    faults: Faults
    store: OrderStore
    metrics: Metrics = field(init=False)
    draining: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.version)

    # -- shared checks -----------------------------------------------------------------
    def missing_column(self) -> str | None:
        """The ``needs-column`` fault's column when the database lacks it, else None."""
        if self.faults.needs_column is None:
            return None
        table, column = self.faults.needs_column
        if self.store.has_column(table, column):
            return None
        return f"{table}.{column}"

    def order_columns(self) -> tuple[str, ...]:
        # The release's code reads the column the migration adds (only for orders).
        needed = self.faults.needs_column
        return (needed[1],) if needed and needed[0] == "orders" else ()

    # -- handlers ----------------------------------------------------------------------
    def health(self, req: Request) -> Response:
        return Response(200, {"status": "ok"})

    def not_ready_because(self) -> str | None:
        """Why the service is not ready (database, schema, the column it needs), or None."""
        problem = self.store.problem()
        if problem is None:
            try:
                column = self.missing_column()
            except StoreError as exc:
                problem = str(exc)
            else:
                if column:
                    problem = f"column {column} does not exist: this version needs the migration that adds it"
        return problem

    def ready(self, req: Request) -> Response:
        if self.draining.is_set():
            return Response(503, {"ready": False, "reason": "shutting down"})
        if self.faults.never_ready:
            return Response(503, {"ready": False, "reason": "still warming up"})
        problem = self.not_ready_because()
        if problem:
            return Response(503, {"ready": False, "reason": problem})
        return Response(200, {"ready": True})

    def metrics_text(self, req: Request) -> Response:
        return Response(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")

    def version_info(self, req: Request) -> Response:
        return Response(200, {"backend": self.store.backend, "faults": self.faults.describe()})

    def create_order(self, req: Request) -> Response:
        try:
            data = json.loads(req.body or b"null")
        except (ValueError, UnicodeDecodeError):
            return Response(400, {"error": "body is not valid JSON"})
        if not isinstance(data, dict):
            return Response(400, {"error": 'send a JSON object: {"customer": "...", "amount_cents": 1234}'})
        customer, amount = data.get("customer"), data.get("amount_cents")
        if not isinstance(customer, str) or not customer.strip():
            return Response(400, {"error": "customer must be a non-empty string"})
        if not _whole(amount) or amount < 0:
            return Response(400, {"error": "amount_cents must be a whole number >= 0"})
        extra = {}
        for column in self.order_columns():
            value = data.get(column, 0)
            if not _whole(value):
                return Response(400, {"error": f"{column} must be a whole number"})
            extra[column] = value
        self._check_column()
        return Response(201, {"order": self.store.create(customer.strip(), amount, extra)})

    def get_order(self, req: Request) -> Response:
        self._check_column()
        order = self.store.get(int(req.params["id"]), self.order_columns())
        if order is None:
            return Response(404, {"error": f"order {req.params['id']} not found"})
        return Response(200, {"order": order})

    def list_orders(self, req: Request) -> Response:
        raw = req.query.get("limit", ["20"])[-1]
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            return Response(400, {"error": f"limit must be a whole number from 1 to 100 (got {raw!r})"})
        self._check_column()
        return Response(200, {"orders": self.store.recent(int(raw), self.order_columns())})

    def _check_column(self) -> None:
        # For a table other than orders the SQL does not touch the column: check it here.
        if self.faults.needs_column and not self.order_columns():
            missing = self.missing_column()
            if missing:
                raise MissingColumn(*missing.split("."))

    # -- faults around the API --------------------------------------------------------
    def api_fault(self) -> Response | None:
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            return Response(500, {"error": "internal error while processing the order"})
        return None


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


Handler = Callable[[App, Request], Response]
# (method, path pattern, metrics label, handler)
ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = [
    ("GET", re.compile(r"/health"), "/health", App.health),
    ("GET", re.compile(r"/ready"), "/ready", App.ready),
    ("GET", re.compile(r"/metrics"), "/metrics", App.metrics_text),
    ("GET", re.compile(r"/version"), "/version", App.version_info),
    ("POST", re.compile(r"/api/orders"), "/api/orders", App.create_order),
    ("GET", re.compile(r"/api/orders"), "/api/orders", App.list_orders),
    ("GET", re.compile(r"/api/orders/(?P<id>[0-9]{1,18})"), "/api/orders/{id}", App.get_order),
]


def route(method: str, path: str) -> tuple[str, Handler | None, dict[str, str], int]:
    """(metrics label, handler, path params, status if no handler)."""
    allowed = False
    for route_method, pattern, label, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match:
            if route_method == method:
                return label, handler, match.groupdict(), 200
            allowed = True
    return ("other", None, {}, 405 if allowed else 404)


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the load generator reuses connections
    disable_nagle_algorithm = True  # else each keep-alive response waits ~40 ms for a delayed ACK
    server: DemoServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        app = self.server.app
        started = time.perf_counter()
        with app.lock:
            app.in_flight += 1
        try:
            label, response = self._respond(app, method)
            self._send(app, response)
            app.metrics.observe(label, method, response.status, time.perf_counter() - started)
        finally:
            with app.lock:
                app.in_flight -= 1

    def _respond(self, app: App, method: str) -> tuple[str, Response]:
        url = urlsplit(self.path)
        label, handler, params, status = route(method, url.path)
        if handler is None:
            return label, Response(status, {"error": f"no route for {method} {url.path}"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return label, Response(413, {"error": f"body larger than {MAX_BODY} bytes"})
        body = self.rfile.read(length) if length else b""
        if label.startswith("/api/"):
            faulted = app.api_fault()
            if faulted is not None:
                return label, faulted
        try:
            return label, handler(app, Request(method, url.path, parse_qs(url.query), params, body))
        except MissingColumn as exc:
            return label, Response(500, {"error": str(exc), "missing_column": f"{exc.table}.{exc.column}"})
        except StoreUnavailable as exc:
            return label, Response(503, {"error": str(exc)})
        except StoreError as exc:
            return label, Response(500, {"error": str(exc)})

    def _send(self, app: App, response: Response) -> None:
        if isinstance(response.body, dict):
            payload = json.dumps({**response.body, "version": app.version}).encode()
        else:
            payload = response.body.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Served-By-Version", app.version)
        if app.draining.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, unsupported method) carry the version too.
        self.close_connection = True
        self._send(self.server.app, Response(code, {"error": message or self.responses.get(code, ("error",))[0]}))

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.access_log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections never hold up shutdown
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        super().__init__(address, DemoHandler)

    def drain(self, grace: float) -> bool:
        """Stop accepting, then wait up to ``grace`` s for in-flight requests; True if drained."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self.app.lock:
                if self.app.in_flight == 0:
                    return True
            time.sleep(0.01)
        return False
