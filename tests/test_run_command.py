"""`gameday run`: features in, verdicts, exit codes and the report files out."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gameday.journal import load, unclosed

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", "run", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def only_report(root: Path) -> Path:
    runs = [p for p in (root / "reports").iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


BACKUP_FEATURE = (REPO / "features" / "backup_restore.feature").read_text()


@pytest.mark.postgres
def test_backup_feature_passes_and_writes_the_reports(tmp_path):
    feature = tmp_path / "backup.feature"
    feature.write_text(BACKUP_FEATURE)
    result = run(str(feature), "-k", "completely", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ Then the restore completes within 60 seconds" in result.stdout
    out = only_report(tmp_path)
    journal = json.loads((out / "journal.json").read_text())
    assert unclosed(load(out / "journal.json")) == []
    [scenario] = journal["scenarios"]
    assert scenario["status"] == "passed"
    assert len(scenario["steps"]) == 7 and all(s["status"] == "passed" for s in scenario["steps"])
    names = {m["name"] for s in scenario["steps"] for m in s["measurements"]}
    assert {"snapshot duration", "restore duration (RTO)", "restore time (RTO)"} <= names
    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    assert any("restore time (RTO)" in p.get("name", "") for p in suite.iter("property"))
    summary = (out / "summary.md").read_text()
    assert "**Verdict: PASSED**" in summary and "restore time (RTO)" in summary
    assert "restore time (RTO)" in (out / "report.html").read_text()


@pytest.mark.postgres
def test_a_missed_expectation_fails_the_run_with_exit_1(tmp_path):
    feature = tmp_path / "backup.feature"
    feature.write_text(BACKUP_FEATURE.replace('table "orders" has 10000 rows', 'table "orders" has 10001 rows'))
    result = run(str(feature), "-k", "completely", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = only_report(tmp_path)
    journal = json.loads((out / "journal.json").read_text())
    [scenario] = journal["scenarios"]
    assert scenario["status"] == "failed"
    assert "table orders has 10000 rows after restore, expected 10001 (1 missing)" in scenario["error"]
    assert ET.parse(out / "junit.xml").getroot().get("failures") == "1"
    assert "MISSED" in (out / "summary.md").read_text()


def test_malformed_feature_exits_2_with_file_and_line(tmp_path):
    feature = tmp_path / "broken.feature"
    feature.write_text("Feature: broken\n  Scenario: one\n    Given a step\n  Oops this is not gherkin\n")
    result = run(str(feature), cwd=tmp_path)
    assert result.returncode == 2
    assert f"malformed feature {feature}:4" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "reports").exists()


def test_unknown_step_exits_2_naming_file_and_line_before_anything_starts(tmp_path):
    feature = tmp_path / "unknown.feature"
    feature.write_text("Feature: x\n  Scenario: y\n    Given the orders database of the demo service with 5 orders\n"
                       "    When the moon turns blue\n")
    result = run(str(feature), cwd=tmp_path)
    assert result.returncode == 2
    assert f'{feature}:4: no step definition matches "When the moon turns blue"' in result.stderr
    assert not (tmp_path / "reports").exists()


def test_missing_path_exits_2(tmp_path):
    result = run(str(tmp_path / "nope.feature"), cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_steps_command_lists_the_library():
    result = subprocess.run([sys.executable, "-m", "gameday.cli", "steps"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "the snapshot is restored into a scratch instance" in result.stdout


def test_outline_rows_are_told_apart_in_the_journal(tmp_path):
    feature = tmp_path / "outline.feature"
    feature.write_text(
        "Feature: rows\n"
        "  Scenario Outline: the same sentence for every row\n"
        "    Given the orders database of the demo service with <count> orders\n"
        "    Examples:\n      | count |\n      | 3     |\n      | 4     |\n"
    )
    result = run(str(feature), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads((only_report(tmp_path) / "journal.json").read_text())
    assert [s["name"] for s in journal["scenarios"]] == [
        "the same sentence for every row [count=3]", "the same sentence for every row [count=4]"]


@pytest.mark.postgres
def test_ctrl_c_stops_everything_and_keeps_the_journal(tmp_path):
    import os
    import shutil
    import signal
    import tempfile
    import time

    # a temp dir of its own, reachable by the unprivileged Postgres user when we run as root
    scratch = Path(tempfile.mkdtemp(prefix="gameday-test-ctrl-c-", dir="/tmp"))
    scratch.chmod(0o755)
    feature = tmp_path / "slow.feature"
    feature.write_text(BACKUP_FEATURE.replace("with 10000 orders", "with 3000000 orders"))
    proc = subprocess.Popen([sys.executable, "-m", "gameday.cli", "run", str(feature), "-k", "completely"],
                            cwd=tmp_path, env=dict(os.environ, TMPDIR=str(scratch)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(scratch.glob("gameday-pg-source-*/data/postmaster.pid")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(scratch.glob("gameday-pg-source-*")), "Postgres never started"
        proc.send_signal(signal.SIGINT)  # Ctrl-C while the orders are being written
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftover_dirs = list(scratch.iterdir())
    shutil.rmtree(scratch, ignore_errors=True)
    assert proc.returncode == 130, out
    assert leftover_dirs == [], "temp dirs left behind"
    leftovers = subprocess.run(["pgrep", "-f", str(scratch)], capture_output=True, text=True)
    assert leftovers.stdout == "", "processes left behind"
    journal = json.loads((only_report(tmp_path) / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert unclosed(load(only_report(tmp_path) / "journal.json")) == []  # an interrupted run is closed too


def test_a_team_step_module_overrides_the_library_fixtures(tmp_path):
    # `--steps` (and `steps:` in the project file) behave like a conftest.py: their fixtures win
    (tmp_path / "team_steps.py").write_text(
        "import pytest\n"
        "from pytest_bdd import then\n\n"
        "@pytest.fixture(scope='session')\n"
        "def gameday_project():\n"
        "    return 'the team s own project'\n\n"
        "@then('the project fixture is the team\\'s')\n"
        "def team_project(gameday_project):\n"
        "    assert gameday_project == 'the team s own project'\n")
    feature = tmp_path / "own.feature"
    feature.write_text("Feature: own steps\n  Scenario: override\n    Then the project fixture is the team's\n")
    result = run(str(feature), "--steps", str(tmp_path / "team_steps.py"), "--reports", str(tmp_path / "reports"),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [scenario] = json.loads((only_report(tmp_path) / "journal.json").read_text())["scenarios"]
    assert scenario["status"] == "passed"


def test_a_step_module_that_does_not_import_is_one_line_exit_2(tmp_path):
    (tmp_path / "broken_steps.py").write_text("import pytest\ndef oops(:\n")
    feature = tmp_path / "own.feature"
    feature.write_text("Feature: f\n  Scenario: s\n    Then something\n")
    result = run(str(feature), "--steps", str(tmp_path / "broken_steps.py"), cwd=tmp_path)
    assert result.returncode == 2
    out = (result.stdout + result.stderr).strip().splitlines()
    assert len(out) == 1 and "broken_steps.py:2" in out[0] and "does not import" in out[0], out


@pytest.mark.parametrize(("server", "expected"), [
    ("https://127.0.0.1:1", "is unreachable: Connection refused"),
    ("https://", "names no API server"),
    (None, "does not exist"),
])
def test_an_unreachable_or_missing_kubeconfig_cluster_is_one_line_exit_2(tmp_path, server, expected):
    kubeconfig = tmp_path / "kubeconfig"
    if server:
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
            f"clusters: [{{name: c, cluster: {{server: '{server}', insecure-skip-tls-verify: true}}}}]\n"
            "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n")
    result = subprocess.run([sys.executable, "-m", "gameday.cli", "run", str(REPO / "features" / "kubernetes_rollback.feature"),
                             "--reports", str(tmp_path / "reports")], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**__import__("os").environ, "GAMEDAY_CLUSTER": "kubeconfig",
                                               "GAMEDAY_KUBECONFIG": str(kubeconfig)})
    assert result.returncode == 2, result.stdout + result.stderr
    # refused before anything starts: one line, no scenario run, no report
    out = (result.stdout + result.stderr).strip().splitlines()
    assert len(out) == 1 and expected in out[0] and str(kubeconfig) in out[0], out
    assert not (tmp_path / "reports").exists()
