"""Runbooks against a real rehearsal: the embedded cluster, the local AWS (moto) and Postgres.

The shipped sample runbooks are checked with `gameday runbook check` (the current one runs
clean; the stale one's drift is listed by line), a game day follows a runbook section as its
act phase, and a checklist's ECS steps run against moto.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.cluster.build import is_built

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "scenarios" / "runbooks"


def gameday(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


def journal_of(root: Path) -> dict:
    [run] = [p for p in (root / "reports").iterdir() if p.is_dir()]
    return json.loads((run / "journal.json").read_text())


def events(journal: dict, kind: str) -> list[dict]:
    found = [e for e in journal["run"]["events"] if e["kind"] == kind]
    for scenario in journal["scenarios"]:
        found += [e for e in scenario["events"] if e["kind"] == kind]
        for step in scenario["steps"]:
            found += [e for e in step["events"] if e["kind"] == kind]
    return found


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.skipif(not is_built(), reason="Kubernetes binaries not built")
def test_the_current_sample_runbook_runs_clean_and_the_stale_one_lists_its_drift(tmp_path):
    current = gameday("runbook", "check", str(RUNBOOKS / "demo-rollback.md"), cwd=tmp_path)
    assert current.returncode == 0, current.stdout + current.stderr
    assert "runbook current" in current.stdout
    journal = journal_of(tmp_path)
    steps = {e["data"]["line"]: e["data"] for e in events(journal, "runbook-step")}
    undo = steps[31]
    assert undo["status"] == "passed"
    undo_call = next(c for c in undo["calls"] if "undo" in c["command"])
    assert undo_call["exit"] == 0 and "namespace production -> default" in undo_call["notes"]
    assert "rolled back" in undo["output"] and "successfully rolled out" in undo["output"]
    roll_back = next(s for s in journal["scenarios"] if s["name"].endswith("› Roll back"))
    [held] = roll_back["measurements"]
    assert held["target"] == 120.0 and held["passed"] is True and held["value"] > 0

    stale_root = tmp_path / "stale"
    stale_root.mkdir()
    stale = gameday("runbook", "check", str(RUNBOOKS / "demo-rollback-stale.md"), cwd=stale_root)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    drift = {(e["data"]["line"], e["data"]["kind"]) for e in events(journal_of(stale_root), "drift")}
    assert drift == {(3, "stale"), (9, "target-missed"), (18, "missing-object"), (19, "rejected-flag"),
                     (24, "unbound-placeholder"), (35, "missing-cli"), (36, "missing-script"),
                     (42, "unmapped-host"), (43, "missing-object")}
    summary = next((stale_root / "reports").iterdir()) / "summary.md"
    assert "line 19 · drift · rejected-flag: kubectl rejects the flag --watch-timeout" in summary.read_text()


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.skipif(not is_built(), reason="Kubernetes binaries not built")
def test_a_game_day_follows_the_runbook_as_its_act_phase(tmp_path):
    result = gameday("run", str(REPO / "features" / "runbook_rollback.feature"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = journal_of(tmp_path)
    [scenario] = journal["scenarios"]
    follow = next(s for s in scenario["steps"] if "follows section" in s["name"])
    ran = [e["data"] for e in follow["events"] if e["kind"] == "runbook-step"]
    assert [(r["line"], r["status"]) for r in ran] == [(20, "passed"), (31, "passed")]
    section = next(m for m in follow["measurements"] if m["name"] == "runbook section 'Roll back' time")
    measured = {m["name"]: m["value"] for s in scenario["steps"] for m in s["measurements"]}
    # act is the runbook's own execution (plus waiting for rollouts it left running: none here)
    assert section["value"] <= measured["time to act"] < section["value"] + 1.5


@pytest.mark.postgres
def test_sql_and_psql_steps_run_on_the_scratch_database_only(tmp_path):
    runbook = tmp_path / "db.md"
    runbook.write_text("# db\n\n## Schema\n\n```sql\nCREATE TABLE orders (id int);\nINSERT INTO orders VALUES (1), (2);\n"
                       "```\n\n```bash\npsql -h production-db.shop.example -U admin -d production -At "
                       "-c 'SELECT count(*) FROM orders'\npg_restore -h production-db.shop.example -d production "
                       "backup-pre-deploy.dump\n```\n")
    result = gameday("runbook", "check", str(runbook), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    journal = journal_of(tmp_path)
    steps = {e["data"]["line"]: e["data"] for e in events(journal, "runbook-step")}
    assert steps[6]["status"] == "passed"
    psql = next(c for c in steps[11]["calls"] if c["command"].startswith("psql"))
    assert psql["exit"] == 0 and "the rehearsal database" in psql["notes"][0]
    assert "2" in steps[11]["output"].splitlines()
    drift = [(e["data"]["line"], e["data"]["kind"]) for e in events(journal, "drift")]
    assert drift == [(12, "missing-file")]


def test_a_checklists_ecs_steps_run_against_the_local_aws(tmp_path):
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text("ecs: {cluster: payments-stage, services: [payments-api]}\n")
    result = gameday("runbook", "check", str(Path(__file__).parent / "data" / "checklist.txt"), "--section", "ECS Path",
                     "--bindings", str(bindings), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # the snapshot script does not exist
    journal = journal_of(tmp_path)
    steps = {(e["data"]["line"], e["data"]["kind"]): e["data"] for e in events(journal, "runbook-step")}
    update = steps[(12, "shell")]
    [call] = update["calls"]
    assert call["outcome"] == "ran" and call["exit"] == 0, update
    # $PREV_TASK came from the generated .rollback_state: the first of the two task definitions
    assert "--task-definition arn:aws:ecs:" in call["command"] and "task-definition/payments-api:1" in call["command"]
    assert "--cluster payments-stage" in call["command"]
    drift = [(e["data"]["line"], e["data"]["kind"]) for e in events(journal, "drift")]
    assert (13, "missing-script") in drift
    assert any(e["data"].get("fidelity") == "simulated" for e in journal["run"]["events"]
               if e["kind"] == "runbook-aws") or "runbook_parts" in journal["environment"]
