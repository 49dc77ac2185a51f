"""A throwaway HTTP app standing in for an image in the tests' own catalog.

Listens on $HOST:$PORT; GET /ready, /health and /version answer with the X-Served-By-Version
header.  APP_FAULT=crash exits at start, APP_FAULT=unready answers /ready with 503.
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "0.0.0")
FAULT = os.environ.get("APP_FAULT", "")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status = 503 if self.path == "/ready" and FAULT == "unready" else 200
        body = (VERSION if self.path == "/version" else ("ok" if status == 200 else "not ready")).encode()
        self.send_response(status)
        self.send_header("X-Served-By-Version", VERSION)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    if FAULT == "crash":
        print("crashing on start", file=sys.stderr)
        raise SystemExit(3)
    ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
