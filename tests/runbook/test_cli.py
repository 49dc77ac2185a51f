"""`gameday runbook check`: bad input is one line and exit 2, before any environment starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
