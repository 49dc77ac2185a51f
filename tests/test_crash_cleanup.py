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
