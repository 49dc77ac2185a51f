"""The incident record (incident.md): each rehearsal written up for a ticket or post-mortem, from the journal alone.

Golden files: tests/data/incident/<name>.json is the journal.json of a real run of the shipped
features/<name>.feature, and <name>.md the incident.md it renders to.  After an intended change
of the record, regenerate the .md files and review their diff:

    REGENERATE_INCIDENT_GOLDEN=1 .venv/bin/python -m pytest -p no:cacheprovider tests/test_incident_record.py -k golden

A fresh journal comes from `.venv/bin/gameday run features/<name>.feature --reports /tmp/r`: copy
/tmp/r/<run-id>/journal.json to tests/data/incident/<name>.json (check it holds no secret), then regenerate.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from gameday.journal import Fidelity, Journal, Status, load
from gameday.report import render_all
from gameday.report.incident import render_incident

DATA = Path(__file__).parent / "data" / "incident"
JOURNALS = sorted(DATA.glob("*.json"))


def journal(name: str) -> dict[str, Any]:
    return load(DATA / f"{name}.json")


def section(record: str, heading: str) -> str:
    """The lines of one ### part of the record, up to the next heading."""
    part = record.split(f"### {heading}\n", 1)[1]
    return part.split("\n#", 1)[0]


def measurement(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for s in data["scenarios"] for st in s["steps"] for m in st["measurements"] if m["name"] == name)


@pytest.mark.parametrize("path", JOURNALS, ids=[p.stem for p in JOURNALS])
def test_golden_incident_records(path: Path):
    rendered = render_incident(load(path))
    golden = path.with_suffix(".md")
    if os.environ.get("REGENERATE_INCIDENT_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_golden_journals_cover_kubernetes_runbook_database_and_ecs():
    assert {p.stem for p in JOURNALS} >= {"kubernetes_rollback", "runbook_rollback", "backup_restore", "ecs_rollback"}


def test_render_all_writes_the_incident_record(tmp_path: Path):
    render_all(journal("kubernetes_rollback"), tmp_path)
    assert (tmp_path / "incident.md").read_text() == (DATA / "kubernetes_rollback.md").read_text()


def test_a_kubernetes_rollback_reads_as_a_timeline_with_impact_and_sign_off():
    record = render_incident(journal("kubernetes_rollback"))
    timeline = section(record, "Timeline")
    order = ["**Bad deploy**", "**Detected**", "**Rollback started**", "`kubectl rollout undo deployment/demo`",
             "**Rollout complete**", "**Recovered**"]
    assert [timeline.index(what) for what in order] == sorted(timeline.index(what) for what in order)
    assert "| 03:18:25 | +0.00 s | **Bad deploy**: deployment/demo set to gameday/demo:2.0.0-errors |" in timeline
    assert "failed (27.5 %) from the bad deploy until recovery" in section(record, "Impact")
    assert "**7.83 s**, measured as “time to rollback (total)”; target ≤ 240 s: met" in record
    sign_off = section(record, "Sign-off")
    assert "- [x] Rollback successful: **yes**" in sign_off
    assert "- [ ] Signed off by: ____" in sign_off and "Date: ____" in sign_off
    assert "**Where it ran:** cluster: local · Kubernetes v1.34.4" in record


def test_a_failed_rollback_signs_off_no_and_names_the_missed_target():
    data = copy.deepcopy(journal("kubernetes_rollback"))
    scenario = data["scenarios"][0]
    scenario["status"], scenario["steps"][-1]["status"] = "failed", "failed"
    scenario["error"] = scenario["steps"][-1]["error"] = "rollback missed the runbook's targets: total 7.8 s > 5 s"
    total = measurement(data, "time to rollback (total)")
    total["target"], total["passed"] = 5.0, False
    record = render_incident(data)
    sign_off = section(record, "Sign-off")
    assert "- [ ] Rollback successful: **no** (the rehearsal failed)" in sign_off
    assert "- [ ] Time to rollback: 7.83 s (≤ 5 s: MISSED)" in sign_off
    assert "time to rollback (total) 7.83 s missed its target (≤ 5 s: MISSED)" in sign_off
    assert "**yes**" not in record and "> **FAILED**: the rehearsal failed (rollback missed" in record


def test_an_interrupted_rehearsal_says_so_and_never_claims_success():
    j = Journal(run_id="cut-short")
    j.begin_scenario("undo under load", feature="k8s")
    j.begin_step("Given", "steady traffic from 4 users")
    j.event("load-started", "locust: 4 users")
    j.open_step.finish(Status.PASSED)
    j.begin_step("When", 'release "2.0.0-errors" is rolled out')
    j.event("bad-deploy", "deployment/demo set to gameday/demo:2.0.0-errors")
    j.open_step.finish(Status.PASSED)
    j.begin_step("When", 'the on-call engineer runs "kubectl rollout undo deployment/demo"')
    j.event("kubectl", "kubectl rollout undo deployment/demo", exit_code=0, duration_s=0.1)
    j.interrupt("SIGINT")
    j.finish()
    record = render_incident(j.to_dict())
    assert "> **INTERRUPTED**: interrupted before the rehearsal finished (interrupted by SIGINT)." in record
    assert "⏹ **interrupted** at “When the on-call engineer runs" in section(record, "Timeline")
    assert "- [ ] Rollback successful: **no** (interrupted before the rehearsal finished)" in record
    assert "traffic ran, but the scenario ended before its signals were kept" in record
    assert "stopped by SIGINT" in record and "**yes**" not in record


def test_a_time_to_rollback_without_target_says_no_target():
    data = copy.deepcopy(journal("kubernetes_rollback"))
    total = measurement(data, "time to rollback (total)")
    total["target"], total["passed"] = None, None
    record = render_incident(data)
    assert "**7.83 s**, measured as “time to rollback (total)”; no target" in record
    assert "- [ ] Time to rollback: 7.83 s (no target)" in section(record, "Sign-off")


def test_simulated_figures_and_actions_are_labelled_and_real_ones_are_not():
    record = render_incident(journal("ecs_rollback"))
    rows = section(record, "Timeline").splitlines()
    assert any("task definition orders:2 registered for 2.0.0-crash *(simulated)*" in r for r in rows)
    assert any("measured ecs.update_service_accepted: 0.01 s (simulated)" in r for r in rows)
    stable = next(r for r in rows if "ecs.rollback_time_to_stable" in r)
    assert "simulated" not in stable and "target ≤ 60 s: met" in stable
    j = Journal()
    j.begin_scenario("snapshot")
    j.begin_step("When", "the DB snapshot is restored")
    j.measure("rds.restore_to_available", 0.03, "s", fidelity=Fidelity.SIMULATED)
    j.event("rds.restore", "scratch instance restored", fidelity=Fidelity.SIMULATED.value)
    assert "0.03 s (simulated)" in render_incident(j.to_dict())
    assert "scratch instance restored *(simulated)*" in render_incident(j.to_dict())


def test_a_rehearsal_without_traffic_says_no_load_recorded():
    record = render_incident(journal("backup_restore"))
    assert "- no load recorded: no traffic was sent, so no requests were counted" in section(record, "Impact")
    assert "**0.04 s**, measured as “restore time (RTO)”; target ≤ 60 s: met" in record


def test_runbook_steps_appear_with_the_commands_they_ran_in_order():
    timeline = section(render_incident(journal("runbook_rollback")), "Timeline")
    started = timeline.index("**Rollback started**")
    noted = timeline.index("runbook line 20 (Note the revision to go back to)")
    undone = timeline.index("`kubectl -n production rollout undo deployment/demo --to-revision=1`")
    assert started < noted < undone


def test_secrets_stay_out_even_of_a_journal_written_by_hand():
    data = copy.deepcopy(journal("kubernetes_rollback"))
    step = data["scenarios"][0]["steps"][4]
    step["events"].append({"kind": "psql", "message": "PGPASSWORD=hunter2 psql postgresql://app:s3cret@db/app",
                           "at": step["end"], "data": {}})
    record = render_incident(data)
    assert "hunter2" not in record and "s3cret" not in record and "postgresql://app:***@db/app" in record
