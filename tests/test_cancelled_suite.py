"""A cancelled test suite (SIGTERM, as a CI runner sends) leaves no `gameday run` it started behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "X"
    return state != "Z"


def test_sigterm_to_the_suite_kills_the_run_a_test_is_waiting_for(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    (tmp_path / "test_waits.py").write_text(textwrap.dedent(f"""
        import subprocess, sys

        def test_waits_for_a_long_run():
            code = "import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
            subprocess.run([sys.executable, "-c", code], check=True)
    """))
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    suite = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                              "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path / "test_waits.py")],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()):
            assert suite.poll() is None and time.monotonic() < deadline, suite.stdout.read() if suite.stdout else ""
            time.sleep(0.05)
        child = int(pidfile.read_text())
        suite.send_signal(signal.SIGTERM)
        output, _ = suite.communicate(timeout=20)
        assert suite.returncode != 0 and "KeyboardInterrupt" in output, output
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the run the test waited for outlived the cancelled suite"
    finally:
        suite.kill()
        if pidfile.exists() and pidfile.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
