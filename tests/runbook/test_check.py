"""A runbook run step by step in bash: variables carried, lines attributed, hangs killed, drift listed.

No cluster here: these runbooks call only the shell, their own scripts and curl on loopback.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from gameday.errors import ConfigError
from gameday.lifecycle import pid_alive, wait_until
from gameday.runbook import parse_runbook
from gameday.runbook.bind import Bindings, assigned_names, placeholders
from gameday.runbook.check import Rehearsal, RunbookCheck


def runbook(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runbook.md"
    path.write_text(text)
    return path


def check(tmp_path, text, *, bindings=None, rehearsal=None, timeout=20.0, **kwargs):
    book = parse_runbook(runbook(tmp_path, text))
    return RunbookCheck(book, bindings or Bindings(), rehearsal or Rehearsal(), workdir=tmp_path,
                        scratch=tmp_path / "scratch", step_timeout=timeout, **kwargs).run()


def test_variables_carry_from_step_to_step_and_output_is_kept(tmp_path):
    result = check(tmp_path, "# r\n\n## One\n\n```bash\nNS=shop\nexport TAG=v1\n```\n\n## Two\n\n"
                             "```bash\necho \"ns=$NS tag=$TAG\"\n```\n")
    assert [s.status for s in result.steps] == ["passed", "passed"]
    assert "ns=shop tag=v1" in result.steps[1].result.output
    assert result.exit_code == 0 and result.findings == []


def test_a_failing_command_is_found_on_its_own_line(tmp_path):
    result = check(tmp_path, "# r\n\n## Go\n\n```bash\necho one\nfalse\necho three\n```\n")
    step = result.steps[0]
    assert step.status == "failed"
    assert [(f.line, f.kind) for f in step.findings] == [(7, "failed")]
    assert result.exit_code == 1


def test_scripts_resolve_in_the_teams_repository_and_missing_ones_are_drift(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "ok.sh").write_text("#!/bin/sh\necho from-the-repo > written.txt\n")
    (scripts / "ok.sh").chmod(0o755)
    result = check(tmp_path, "# r\n\n## Go\n\n```bash\n./scripts/ok.sh\n./scripts/gone.sh quick\n```\n")
    assert [(f.line, f.kind) for f in result.findings] == [(7, "missing-script")]
    assert not (tmp_path / "written.txt").exists()  # what a step writes stays out of the repository
    assert (tmp_path / "scratch" / "work" / "written.txt").read_text() == "from-the-repo\n"


def test_a_hanging_step_is_killed_at_its_timeout_with_everything_it_started(tmp_path):
    pids = tmp_path / "pids"
    result = check(tmp_path, f"# r\n\n## Hang\n\n```bash\nsleep 300 &\necho $! > {pids}\nsleep 300\n```\n\n"
                             "## After\n\n```bash\necho still-going\n```\n", timeout=1.5)
    hung, after = result.steps
    assert hung.status == "timeout" and 1.4 < hung.result.duration_s < 5
    assert after.status == "passed"  # the check goes on
    background = int(pids.read_text())
    wait_until(lambda: not pid_alive(background), timeout=5, what=f"background sleep {background} to die")
    assert result.exit_code == 1 and [f.line for f in result.findings] == [6]


def test_unbound_placeholders_are_never_guessed(tmp_path):
    text = "# r\n\n## Go\n\n```bash\necho undo --to-revision=<revision-number>\necho \"$AWS_CLUSTER\"\n```\n"
    result = check(tmp_path, text)
    assert result.steps[0].status == "skipped"
    assert [(f.line, f.kind) for f in result.findings] == [(6, "unbound-placeholder"), (7, "unbound-placeholder")]
    bound = Bindings()
    bound.merge_sets(["revision-number=7", "AWS_CLUSTER=shop"])
    result = check(tmp_path, text, bindings=bound)
    assert result.steps[0].status == "passed"
    assert "--to-revision=7\nshop" in result.steps[0].result.output


def test_facts_from_the_rehearsal_and_rollback_state(tmp_path):
    bound = Bindings()
    bound.merge_sets(["revision-number=@previous-revision"])
    rehearsal = Rehearsal(facts={"@previous-revision": "3"}, rollback_state={"PREV_TASK": "arn:task/web:1"})
    result = check(tmp_path, "# r\n\n## Go\n\n```bash\nsource .rollback_state\necho <revision-number> $PREV_TASK\n"
                             "```\n", bindings=bound, rehearsal=rehearsal)
    assert result.steps[0].result.output.strip() == "3 arn:task/web:1"


def test_a_section_slower_than_its_stated_target_is_drift(tmp_path):
    result = check(tmp_path, "# r\n\n## Go\n**Target Time**: < 0.2 seconds\n\n```bash\nsleep 0.5\n```\n")
    assert [(f.line, f.kind) for f in result.findings] == [(4, "target-missed")]
    assert "its target is Target Time: < 0.2 seconds" in result.findings[0].message


def test_curl_through_the_host_map_reaches_the_rehearsal_and_unmapped_hosts_are_not_sent(tmp_path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(f"served {self.path}".encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rehearsal = Rehearsal(hosts={"api.shop.example": f"http://127.0.0.1:{server.server_port}"})
        result = check(tmp_path, "# r\n\n## Go\n\n```bash\ncurl -fsS https://api.shop.example/health\n"
                                 "curl -fsS https://metrics.shop.example/q\n```\n", rehearsal=rehearsal)
    finally:
        server.shutdown()
    step = result.steps[0]
    assert "served /health" in step.result.output
    assert [(c.line, c.outcome) for c in step.result.calls] == [(6, "ran"), (7, "not-rehearsable")]
    assert [(f.line, f.kind) for f in result.findings] == [(7, "unmapped-host")]


def test_manual_steps_are_listed_or_confirmed_and_timed(tmp_path):
    text = "# r\n\n## Go\n\n- [ ] Tell the channel.\n- Check the dashboard.\n"
    listed = check(tmp_path, text)
    assert [s.status for s in listed.steps] == ["manual", "manual"] and listed.exit_code == 0
    asked = []
    confirmed = check(tmp_path, text, confirm=lambda step: asked.append(step.line) or step.line == 5)
    assert asked == [5, 6]
    assert [s.status for s in confirmed.steps] == ["passed", "failed"] and confirmed.exit_code == 1


def test_placeholders_and_the_variables_a_runbook_sets_itself():
    text = 'NS=shop\nfor i in 1 2; do echo $i; done\nkubectl -n "$NS" undo --to-revision=<N> $AWS_CLUSTER ${HOME}'
    assigned = assigned_names([text])
    assert {"NS", "i"} <= assigned
    found = placeholders(text, (10, 11, 12), assigned)
    assert [(p.form, p.line) for p in found] == [("<N>", 12), ("$AWS_CLUSTER", 12)]


def test_bindings_files_and_sets_that_disagree_are_bad_input(tmp_path):
    good = tmp_path / "b.yaml"
    good.write_text("set: {revision-number: 4}\nnamespaces: {production: shop}\nhosts: {api.shop.example: web}\n")
    bound = Bindings()
    bound.merge_file(good)
    assert bound.values["revision-number"] == "4" and bound.namespaces == {"production": "shop"}
    with pytest.raises(ConfigError, match="bound twice differently"):
        bound.merge_sets(["revision-number=5"])
    twice = tmp_path / "twice.yaml"
    twice.write_text("set:\n  a: 1\n  a: 2\n")
    with pytest.raises(ConfigError, match="line 3: a is bound twice differently"):
        Bindings().merge_file(twice)
    for text, message in (("set: [1", "is not valid YAML"), ("- a\n", "must be a mapping"),
                          ("sets: {a: 1}\n", "sets: Extra inputs are not permitted")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            Bindings().merge_file(bad)
    with pytest.raises(ConfigError, match="is not name=value"):
        Bindings().merge_sets(["revision-number"])
