"""A small "checkout-api" on 127.0.0.1: a service that is not the demo, for the load engine's tests.

It serves /health, /version and a cart API, names its release in the ``X-App-Version``
header and in the JSON body's ``build.release``, and counts what it served per route.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class CheckoutApi:
    release: str = "3.1.0"
    missing: set[str] = field(default_factory=set)  # paths answered 404
    served: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, object] | str]:
        route = path.split("?", 1)[0]
        with self.lock:
            self.served[(method, route)] += 1
        if route in self.missing:
            return 404, {"error": f"no route {route}"}
        if (method, route) in (("GET", "/health"), ("GET", "/version")):
            return 200, {"status": "ok"}
        if (method, route) == ("GET", "/cart"):
            return 200, {"items": [{"sku": "A1", "qty": 1}]}
        if (method, route) == ("POST", "/cart"):
            data = json.loads(body or b"null")
            return (201, {"added": data}) if isinstance(data, dict) and data.get("sku") else (400, {"error": "no sku"})
        if (method, route) == ("GET", "/cart/text"):
            return 200, "a cart in plain text"
        if (method, route) == ("POST", "/cart/checkout"):
            return 409, {"error": "cart is empty"}
        return 404, {"error": f"no route {route}"}


def _handler(api: CheckoutApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each keep-alive response waits ~40 ms for a delayed ACK

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = api.answer(self.command, self.path, self.rfile.read(length) if length else b"")
            if isinstance(payload, dict):
                raw = json.dumps({**payload, "build": {"release": api.release}}).encode()
                content_type = "application/json"
            else:
                raw, content_type = payload.encode(), "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("X-App-Version", api.release)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def checkout_api() -> Iterator[CheckoutApi]:
    api = CheckoutApi()
    api.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.server.daemon_threads = True
    thread = threading.Thread(target=api.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
