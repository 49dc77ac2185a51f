"""A new team's repository, for the walkthrough and the team-service tests: a Python stdlib HTTP
service "checkout-api" gameday has never seen, that names its release in ``X-App-Version``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

APP = '''\
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "dev")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        elif self.path == "/version":
            body = json.dumps({"version": VERSION}).encode()
        elif self.path.startswith("/api/cart"):
            body = json.dumps({"items": [], "total_cents": 0}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("X-App-Version", VERSION)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
'''

MANIFESTS = '''\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout-api
spec:
  replicas: 2
  selector:
    matchLabels: {app: checkout-api}
  template:
    metadata:
      labels: {app: checkout-api}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: ghcr.io/acme/checkout-api:3.1.0
          ports: [{containerPort: 9000}]
          readinessProbe: {httpGet: {path: /health, port: 9000}, periodSeconds: 1}
          livenessProbe: {httpGet: {path: /health, port: 9000}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata:
  name: checkout-api
spec:
  selector: {app: checkout-api}
  ports: [{port: 80, targetPort: 9000}]
'''


def _gameday(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gameday.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def _phases(report_root: Path) -> tuple[str, dict[str, float]]:
    [journal_path] = report_root.glob("*/journal.json")
    journal = json.loads(journal_path.read_text())
    [scenario] = journal["scenarios"]
    measured = {m["name"]: m["value"] for st in scenario["steps"] for m in st["measurements"]}
    measured.update({m["name"]: m["value"] for m in scenario["measurements"]})  # recorded at scenario end
    return scenario["status"], measured


@pytest.fixture
def team_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    (repo / "k8s").mkdir(parents=True)
    (repo / "app.py").write_text(APP)
    (repo / "k8s" / "checkout.yaml").write_text(MANIFESTS)
    return repo




@pytest.fixture
def gameday():  # type: ignore[no-untyped-def]
    """``gameday(*args, cwd=..., env=...)``: the CLI in a subprocess, as a user runs it."""
    return _gameday


@pytest.fixture
def phases():  # type: ignore[no-untyped-def]
    """``phases(report_root)``: the one scenario's status and its measurements by name."""
    return _phases
