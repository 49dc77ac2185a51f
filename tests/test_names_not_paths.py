"""Names are names, never paths; a pid from a state file is checked to be ours before it is signalled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def gameday(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", ["..", "", "../../outside", "a/b", "."])
def test_a_cluster_name_that_is_a_path_is_refused_and_nothing_is_deleted(tmp_path, name):
    cache = tmp_path / "cache"
    (cache / "clusters" / "default").mkdir(parents=True)
    keep = cache / "k8s-binaries-stand-in"
    keep.write_text("403 MB of built binaries")
    outside = tmp_path / "outside"
    outside.mkdir()
    result = gameday("cluster", "--name", name, "down", cwd=tmp_path, env={"GAMEDAY_CACHE": str(cache)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not a name" in result.stderr and "Traceback" not in result.stderr
    assert keep.exists() and (cache / "clusters" / "default").is_dir() and outside.is_dir()


def test_a_stale_state_file_never_gets_another_process_killed(tmp_path):
    cache = tmp_path / "cache"
    state = cache / "clusters" / "stale"
    state.mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "30"])  # an unrelated process that now holds the recorded pid
    try:
        (state / "state.json").write_text(json.dumps({"status": "ready", "daemon_pid": bystander.pid,
                                                      "pids": {"etcd": bystander.pid}}))
        result = gameday("cluster", "--name", "stale", "down", cwd=tmp_path, env={"GAMEDAY_CACHE": str(cache)})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "not running" in result.stdout + result.stderr
        time.sleep(0.2)
        assert bystander.poll() is None  # still alive
        assert not state.exists()  # the stale state itself is gone
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("run_id", ["../../x", "a/b", ".."])
def test_a_run_id_that_is_a_path_is_refused_before_anything_runs(tmp_path, run_id):
    work = tmp_path / "work"
    work.mkdir()
    result = gameday("run", "--run-id", run_id, cwd=work)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--run-id" in result.stderr and "is not a name" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and not (work / "reports").exists()
