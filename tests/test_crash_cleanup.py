"""A harness killed outright (SIGKILL, no cleanup code runs) leaves no server behind,
and its temp dir is swept by the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gameday.lifecycle import pid_alive, temp_dir

pytestmark = pytest.mark.postgres

HARNESS = """
import sys, time
from gameday.database.local import LocalPostgres
db = LocalPostgres("crash").start()
print(db._server.pid, db.root, flush=True)
time.sleep(600)
"""


def test_sigkilled_harness_takes_its_postgres_down_and_the_next_start_sweeps_its_dir():
    harness = subprocess.Popen([sys.executable, "-c", HARNESS], stdout=subprocess.PIPE, text=True)
    try:
        line = harness.stdout.readline().split()
        postmaster, root = int(line[0]), Path(line[1])
        assert pid_alive(postmaster) and root.is_dir()
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait(timeout=10)
        deadline = time.monotonic() + 20
        while pid_alive(postmaster) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(postmaster), "the postmaster outlived the harness"
        assert root.is_dir()  # nothing could clean up after SIGKILL ...
        temp_dir("pg-crash")  # ... until the next start of the same kind of provider
        assert not root.exists()
    finally:
        if harness.poll() is None:
            harness.kill()


KUBE_HARNESS = """
import sys, time, base64
from pathlib import Path
from gameday.cluster.access import api_client
from gameday.lifecycle import temp_dir

run = temp_dir("run")
pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n").decode()
kubeconfig = Path(sys.argv[1])
kubeconfig.write_text(f'''
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:1", certificate-authority-data: "{pem}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
''')
client = api_client(kubeconfig)
print(run, client.configuration.ssl_ca_cert, flush=True)
time.sleep(600)
"""


def test_a_sigkilled_runs_folders_and_kube_client_certs_are_swept_by_the_next_command(tmp_path):
    harness = subprocess.Popen([sys.executable, "-c", KUBE_HARNESS, str(tmp_path / "kubeconfig")],
                               stdout=subprocess.PIPE, text=True)
    try:
        run, ca = (Path(p) for p in harness.stdout.readline().split())
        assert run.is_dir() and Path(ca).is_file()
        assert Path(ca).parent.name.startswith("gameday-kubeclient-")  # in a folder of ours, not loose in /tmp
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait(timeout=10)
        assert run.is_dir() and Path(ca).is_file()  # nothing could clean up after SIGKILL ...
        subprocess.run([sys.executable, "-m", "gameday.cli", "settings"], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
        assert not run.exists() and not Path(ca).exists()  # ... until the next gameday command
    finally:
        if harness.poll() is None:
            harness.kill()
