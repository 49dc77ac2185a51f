"""`gameday runbook check`: bad input is one line and exit 2, before any environment starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gameday.lifecycle import pid_alive, wait_until

REPO = Path(__file__).resolve().parents[2]
STALE = REPO / "scenarios" / "runbooks" / "demo-rollback-stale.md"


def gameday(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", "runbook", "check", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


def one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_list_shows_sections_and_steps_without_running_anything(tmp_path):
    result = gameday(str(STALE), "--list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "## Roll back" in result.stdout and "35  shell   argocd app rollback demo-production" in result.stdout
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("setup, args, needles", [
    (None, ["missing.md"], ["runbook missing.md does not exist"]),
    ("dir", ["folder"], ["is a folder"]),
    ("binary", ["blob.md"], ["is a binary file"]),
    ("empty", ["empty.md"], ["is empty"]),
    (None, [str(STALE), "--section", "Roll forward"], ["'Roll forward' is not a section", "name one of:"]),
    ("bindings", [str(STALE), "--bindings", "bad.yaml"], ["bindings file bad.yaml", "not valid YAML"]),
    ("twice", [str(STALE), "--bindings", "twice.yaml", "--set", "revision-number=3"],
     ["revision-number is bound twice differently"]),
    (None, [str(STALE), "--set", "oops"], ["--set 'oops' is not name=value"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, setup, args, needles):
    if setup == "dir":
        (tmp_path / "folder").mkdir()
    elif setup == "binary":
        (tmp_path / "blob.md").write_bytes(b"\x7fELF\x00\x00")
    elif setup == "empty":
        (tmp_path / "empty.md").write_text("")
    elif setup == "bindings":
        (tmp_path / "bad.yaml").write_text("set: [unclosed\n")
    elif setup == "twice":
        (tmp_path / "twice.yaml").write_text("set: {revision-number: 2}\n")
    result = gameday(*args, cwd=tmp_path)
    one_line_exit_2(result, *needles)
    assert not (tmp_path / "reports").exists()  # nothing started, nothing written


def test_sigterm_stops_the_check_keeps_what_ran_and_leaves_nothing_running(tmp_path):
    import json
    import signal
    import time

    runbook = tmp_path / "slow.md"
    marker = tmp_path / "sleeping.pid"
    runbook.write_text(f"# slow\n\n## Go\n\n```bash\necho first\n```\n\n```bash\nsleep 60 &\necho $! > {marker}\n"
                       "wait\n```\n")
    proc = subprocess.Popen([sys.executable, "-m", "gameday.cli", "runbook", "check", str(runbook)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the second step never started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err and "interrupted: the steps run so far are in" in out
    background = int(marker.read_text())  # the step's background sleep was killed with it (a zombie counts as dead)
    wait_until(lambda: not pid_alive(background), timeout=5, what=f"background sleep {background} to die")
    [run] = list((tmp_path / "reports").iterdir())
    journal = json.loads((run / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    [scenario] = journal["scenarios"]
    assert [(s["name"], s["status"]) for s in scenario["steps"]] == [("line 6: echo first", "passed")]
