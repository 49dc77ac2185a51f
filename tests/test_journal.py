from __future__ import annotations

import json
import typing

import pytest

from gameday.errors import ConfigError
from gameday.journal import (
    ActivityRecord,
    EventRecord,
    Fidelity,
    Journal,
    JournalRecord,
    MeasurementRecord,
    ScenarioRecord,
    Status,
    StepRecord,
    load,
    redact,
)
from gameday.report import write_reports


def test_measurements_attach_to_the_open_step_and_targets_decide_verdicts(tmp_path):
    journal = Journal(run_id="r1")
    journal.begin_scenario("rollback", feature="f")
    journal.begin_step("When", "the rollback runs")
    journal.measure("act", 12.0, "s", target=10.0)
    journal.measure("api calls", 3, "calls", fidelity=Fidelity.SIMULATED)
    journal.open_step.finish(Status.PASSED)
    scenario = journal.scenarios[0]
    assert [m.name for m in scenario.steps[0].measurements] == ["act", "api calls"]
    assert scenario.steps[0].measurements[0].passed is False
    scenario.finish(Status.FAILED, "targets missed: act")
    journal.finish()
    assert journal.status == Status.FAILED
    data = load(journal.write(tmp_path))
    assert data["scenarios"][0]["steps"][0]["measurements"][1]["fidelity"] == "simulated"


def test_secrets_never_reach_the_written_journal(tmp_path):
    journal = Journal(environment={"dsn": "postgresql://app:s3cret@db:5432/app"})
    journal.event("note", "connecting with password=hunter2 and token: abc.def")
    journal.finish()
    text = (write_reports(journal, tmp_path) / "journal.json").read_text()
    assert "s3cret" not in text and "hunter2" not in text and "abc.def" not in text
    assert "postgresql://app:***@db:5432/app" in text


def test_redact_keeps_harmless_text():
    assert redact("rollout undo took 3.2 s") == "rollout undo took 3.2 s"


def test_reports_render_from_the_journal_file_alone(tmp_path):
    journal = Journal(run_id="r2")
    journal.begin_scenario("restore", feature="backups")
    journal.begin_step("Then", "restore is fast")
    journal.measure("restore time (RTO)", 4.0, "s", target=60)
    journal.open_step.finish(Status.PASSED)
    journal.current_scenario.finish(Status.PASSED)
    journal.finish()
    out = write_reports(journal, tmp_path)
    data = json.loads((out / "journal.json").read_text())
    data["scenarios"][0]["name"] = "renamed in the journal"
    (out / "journal.json").write_text(json.dumps(data))
    from gameday.report import render_all

    render_all(data, out)
    assert "renamed in the journal" in (out / "summary.md").read_text()
    assert 'name="renamed in the journal"' in (out / "junit.xml").read_text()


def test_pipes_in_step_text_do_not_break_the_summary_tables():
    from gameday.report.summary import render_summary

    journal = Journal(run_id="r3")
    journal.begin_scenario("a | b")
    journal.begin_step("When", "the on-call runs \"kubectl get pods | grep demo\"")
    journal.open_step.finish(Status.PASSED)
    journal.current_scenario.finish(Status.PASSED)
    journal.finish()
    summary = render_summary(journal.to_dict())
    step_rows = [line for line in summary.splitlines() if "kubectl get pods" in line]
    assert step_rows == ['| ✅ | When the on-call runs "kubectl get pods \\| grep demo" | 0.00 s |']
    assert "| a \\| b | ✅ passed |" in summary


def test_report_html_draws_the_traffic_timeline_with_the_rollback_marks(tmp_path):
    journal = Journal(run_id="r4")
    journal.begin_scenario("undo under load", feature="k8s")
    journal.begin_step("Then", "all traffic is served by release 1.0.0 again")
    series = [{"t": t, "requests": 10, "error_rate": 0.5 if 3 <= t < 6 else 0.0, "p95_ms": 5.0,
               "versions": {"2.0.0": 1.0} if 3 <= t < 6 else {"1.0.0": 1.0}} for t in range(1, 10)]
    journal.event("signals", "per second", series=series, marks={"t0": 2.5, "detected": 4.0, "recovered": 6.2},
                  stable="1.0.0")
    journal.open_step.finish(Status.PASSED)
    journal.begin_scenario("no traffic here", feature="db")
    journal.finish()
    html = (write_reports(journal, tmp_path) / "report.html").read_text()
    assert html.count("<svg") == 1  # only the scenario that recorded signals gets a plot
    for label in ("bad deploy", "alarm", "recovered", "1.0.0 %"):
        assert label in html


def test_scenario_end_actions_run_once_and_never_change_the_verdict():
    journal = Journal()
    journal.begin_scenario("s")
    seen = []
    journal.at_scenario_end(lambda: seen.append("recorded"))
    journal.at_scenario_end(lambda: 1 / 0)
    journal.scenario_ending()
    journal.scenario_ending()
    assert seen == ["recorded"]
    assert [e.kind for e in journal.current_scenario.events] == ["journal-error"]


def _declared(record: type) -> set[str]:
    return set(typing.get_type_hints(record))


def test_every_key_the_writer_puts_in_a_journal_is_declared_by_the_typed_read_side(tmp_path):
    """The read side (JournalRecord and its parts) stays in step with Journal.to_dict: a key
    written but not declared would reach the reports untyped."""
    journal = Journal(run_id="r1", environment={"machine": {"cores": 2}})
    journal.begin_scenario("s", feature="f", tags=["@t"], test_id="x::s")
    journal.measure("m0", 1.0, "s")
    journal.event("e0", "on the scenario")
    step = journal.begin_step("When", "it runs")
    journal.measure("m1", 2.0, "s", target=3.0)
    journal.event("e1", "on the step", n=1)
    step.finish(Status.PASSED)
    journal.current_scenario.finish(Status.PASSED)
    journal.finish()
    data = json.loads(journal.write(tmp_path).read_text())
    [scenario] = data["scenarios"]
    [step_data] = scenario["steps"]
    assert set(data) <= _declared(JournalRecord), set(data) - _declared(JournalRecord)
    assert set(data["run"]) - {"duration_s"} <= _declared(ActivityRecord)
    assert set(scenario) <= _declared(ScenarioRecord), set(scenario) - _declared(ScenarioRecord)
    assert set(step_data) <= _declared(StepRecord), set(step_data) - _declared(StepRecord)
    assert set(step_data["measurements"][0]) <= _declared(MeasurementRecord)
    assert set(step_data["events"][0]) <= _declared(EventRecord)
    loaded = load(tmp_path / "journal.json")
    assert loaded["scenarios"][0]["steps"][0]["measurements"][0]["target"] == 3.0


def test_the_typed_read_side_keeps_newer_keys_and_refuses_what_is_not_what_it_says(tmp_path):
    journal = Journal(run_id="r2")
    journal.finish()
    path = journal.write(tmp_path)
    data = json.loads(path.read_text())
    data["added_by_a_newer_gameday"] = {"x": 1}
    path.write_text(json.dumps(data))
    assert load(path)["added_by_a_newer_gameday"] == {"x": 1}  # type: ignore[typeddict-item]
    data["scenarios"] = [{"name": "s", "status": "passed", "duration_s": True, "measurements": [], "events": [],
                          "steps": []}]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"scenarios\[0\]\.duration_s is bool, not"):
        load(path)


def test_the_reports_table_failed_requests_per_endpoint_and_phase(tmp_path):
    journal = Journal(run_id="r5")
    journal.begin_scenario("code back, schema not", feature="migrations")
    journal.begin_step("Then", "all traffic is served by release 1.2.0 again")
    rows = [{"endpoint": "POST /api/cart", "phases": {"before": {"requests": 10, "error_rate": 0.0},
                                                      "incident": {"requests": 20, "error_rate": 0.5},
                                                      "acting": {"requests": 8, "error_rate": 1.0}}},
            {"endpoint": "GET /api/cart | all", "phases": {"before": {"requests": 0, "error_rate": None}}}]
    journal.event("endpoints", "per endpoint", rows=rows)
    journal.open_step.finish(Status.PASSED)
    journal.current_scenario.finish(Status.PASSED)
    journal.finish()
    out = write_reports(journal, tmp_path)
    summary = (out / "summary.md").read_text()
    assert "| POST /api/cart | 0.0 % of 10 | 50.0 % of 20 | 100.0 % of 8 |  |" in summary  # no "after": it never came
    assert "| GET /api/cart \\| all | no request |" in summary
    assert "<td>POST /api/cart</td><td>0.0 % of 10</td><td>50.0 % of 20</td><td>100.0 % of 8</td><td></td>" in \
        (out / "report.html").read_text()
