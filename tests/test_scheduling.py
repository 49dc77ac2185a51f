"""The scheduling examples (examples/schedule, docs/scheduling.md) stay true to the CLI and the history store.

Every `gameday ...` command line in the workflow, the systemd unit and the crontab is parsed by the
`gameday` click command itself, so renaming or removing an option breaks this test, not a Tuesday run.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from gameday.cli import cli
from gameday.paths import safe_name
from gameday.runner import history_path

ROOT = Path(__file__).resolve().parents[1]
SCHEDULE = ROOT / "examples" / "schedule"
WORKFLOW = SCHEDULE / "gameday-weekly.yml"
PLACEHOLDERS = {"github.run_id": "4242", "github.run_attempt": "1"}


def expand(text: str) -> str:
    """`${{ expr }}` to a dummy value, as the runner would substitute it."""
    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: PLACEHOLDERS.get(m.group(1), "x"), text)


def gameday_commands(script: str) -> list[list[str]]:
    """Each `gameday ...` (the command `gameday` or `.../bin/gameday`) in a shell script, up to the first operator."""
    found = []
    for line in expand(script).replace("\\\n", " ").splitlines():
        line = re.sub(r"(?<!\S)\d+(?=[<>])", "", line)  # the 2 of 2>&1 is no argument
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if token != "gameday" and not token.endswith("/bin/gameday"):
                continue
            argv: list[str] = []
            for t in tokens[i + 1:]:
                if set(t) <= set(lexer.punctuation_chars):
                    break
                argv.append(t)
            found.append(argv)
    return found


def parse(argv: list[str]) -> click.Context:
    """Parse argv exactly as `gameday` would (options, choices, ranges); the innermost command's context."""
    ctx = cli.make_context("gameday", list(argv), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert sub is not None and name is not None, argv
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)
        command = sub
    return ctx


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict]:
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def step(name: str) -> dict:
    return next(s for s in steps() if s.get("name") == name)


def cron_ok(expression: str) -> bool:
    fields = expression.split()
    if len(fields) != 5:
        return False
    ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
    item = re.compile(r"^(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$")
    for field, (low, high) in zip(fields, ranges, strict=True):
        for part in field.split(","):
            m = item.match(part)
            if not m or (m.group(4) is not None and int(m.group(4)) == 0):
                return False
            numbers = [int(n) for n in m.group(2, 3) if n is not None]
            if any(not low <= n <= high for n in numbers) or numbers != sorted(numbers):
                return False
    return True


def test_cron_check_itself():
    assert cron_ok("30 6 * * 2") and cron_ok("*/15 0-5,22 1 1-12/2 1-5")
    assert not any(map(cron_ok, ["30 6 * *", "60 6 * * 2", "30 6 * * 7", "30 6 * * 2 x", "5-1 * * * *", "@weekly"]))


def test_gameday_commands_are_found_and_parsed_like_the_cli():
    assert gameday_commands('set +e\n.venv/bin/gameday run --reports r --run-id "${{ github.run_id }}" 2>&1 | tee l') \
        == [["run", "--reports", "r", "--run-id", "4242"]]
    assert gameday_commands("cd /opt/gameday && env A=1 /opt/gameday/.venv/bin/gameday history --last 3 >>log 2>&1"
                            "\nb; gameday steps; c") == [["history", "--last", "3"], ["steps"]]
    assert parse(["run", "--reports", "r", "--fail-on-regression"]).params["fail_on_regression"] is True
    for bad in (["run", "--fail-on-regresion"], ["history", "--last", "0"], ["nope"]):
        with pytest.raises(click.UsageError):
            parse(bad)


def test_workflow_runs_on_a_schedule_one_at_a_time_within_a_bound():
    wf = workflow()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert "workflow_dispatch" in on
    crons = [entry["cron"] for entry in on["schedule"]]
    assert crons and all(cron_ok(c) for c in crons), crons
    assert wf["concurrency"]["group"] and wf["concurrency"]["cancel-in-progress"] is False
    for job in wf["jobs"].values():
        assert 0 < job["timeout-minutes"] <= 360  # GitHub's own limit for a hosted job
        assert "ubuntu" in job["runs-on"]


def test_every_gameday_command_in_the_workflow_is_a_valid_invocation():
    commands = [argv for s in steps() if "run" in s for argv in gameday_commands(s["run"])]
    names = set()
    for argv in commands:
        ctx = parse(argv)
        names.add(ctx.command.name)
    assert names == {"run", "history"}, commands
    (run,) = [parse(a).params for a in commands if a[0] == "run"]
    assert run["fail_on_regression"] and run["reports"] == Path("reports")
    assert safe_name(run["run_id"], "--run-id") == PLACEHOLDERS["github.run_id"]


def test_the_history_the_workflow_keeps_is_the_one_gameday_writes(monkeypatch: pytest.MonkeyPatch):
    wf = workflow()
    monkeypatch.delenv("GAMEDAY_HISTORY", raising=False)
    for job in wf["jobs"].values():
        for name, value in {**wf.get("env", {}), **job.get("env", {})}.items():
            monkeypatch.setenv(name, str(value))
    (argv,) = [a for s in steps() if "run" in s for a in gameday_commands(s["run"]) if a[0] == "run"]
    written = history_path(parse(argv).params["reports"])
    restore, save = step("Restore the game-day history"), step("Save the history for the next run")
    assert Path(restore["with"]["path"]) == written == Path(save["with"]["path"])
    assert Path(step("Upload the history")["with"]["path"]) == written
    # cache keys are immutable: a key of its own per run, the newest restored by prefix
    assert "github.run_id" in restore["with"]["key"] and restore["with"]["key"].startswith(
        restore["with"]["restore-keys"].strip())
    assert save["with"]["key"] == "${{ steps.history.outputs.cache-primary-key }}"
    fallback = step("Fall back to the history of an earlier run")["run"]
    assert f"--name {step('Upload the history')['with']['name']} --dir {written.parent}" in fallback


def test_reports_summary_history_and_junit_are_kept_whatever_the_exit_code():
    run_id = "${{ github.run_id }}"
    always = ["Summary", "Upload the reports", "Upload the history", "Save the history for the next run",
              "Publish the JUnit report"]
    for name in always:
        assert "always()" in step(name).get("if", ""), name
    assert f"reports/{run_id}/summary.md" in step("Summary")["run"]
    assert "GITHUB_STEP_SUMMARY" in step("Summary")["run"]
    assert f"reports/{run_id}/" in step("Upload the reports")["with"]["path"].splitlines()
    assert step("Publish the JUnit report")["with"]["report_paths"] == f"reports/{run_id}/junit.xml"
    assert step("Upload the history")["uses"].startswith("actions/upload-artifact@")


def fake_gameday(tmp_path: Path, code: int) -> None:
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "gameday"
    fake.write_text(f"#!/bin/sh\necho 'regression: rollback drill: time to act 9.00 s, +100% against the median'\n"
                    f"exit {code}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)


def run_step(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    # the shell GitHub uses for `run:` on Linux
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", expand(step(name)["run"])],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("code", [0, 1, 2, 3, 143])
def test_exit_3_passes_the_run_step_and_fails_the_job_as_a_regression(tmp_path: Path, code: int):
    fake_gameday(tmp_path, code)
    ran = run_step(tmp_path, "Game day")
    assert ran.returncode == (0 if code in (0, 3) else code), ran.stderr
    assert f"exit-code={code}" in (tmp_path / "out").read_text().splitlines()
    assert "regression:" in (tmp_path / "gameday.log").read_text()
    regression = step("Regression (exit 3)")
    assert "steps.gameday.outputs.exit-code == '3'" in regression["if"]
    if code == 3:
        flagged = run_step(tmp_path, "Regression (exit 3)")
        assert flagged.returncode == 1
        assert "::warning title=time-to-rollback regression::rollback drill: time to act 9.00 s" in flagged.stdout
        assert "- rollback drill: time to act" in (tmp_path / "summary").read_text()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive in systemd
    parser.read_string((SCHEDULE / name).read_text())
    return parser


def test_systemd_timer_and_service():
    timer, service = unit("gameday.timer"), unit("gameday.service")
    assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["RandomizedDelaySec"] and timer["Install"]["WantedBy"] == "timers.target"
    assert timer["Timer"].get("Unit", "gameday.service") == "gameday.service"
    svc = service["Service"]
    assert svc["Type"] == "oneshot" and svc["TimeoutStartSec"] not in ("", "0", "infinity")
    assert svc["WorkingDirectory"].startswith("/")
    (argv,) = gameday_commands(svc["ExecStart"])
    assert shlex.split(svc["ExecStart"])[0].endswith("/gameday")
    params = parse(argv).params
    assert params["fail_on_regression"]
    environment = dict(line.split("=", 2)[1:] for line in (SCHEDULE / "gameday.service").read_text().splitlines()
                       if line.startswith("Environment="))
    kept = f"/var/lib/{svc['StateDirectory']}/"  # persistent, owned by User=
    assert environment["GAMEDAY_HISTORY"].startswith(kept) and str(params["reports"]).startswith(kept)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path):
    gameday = shutil.which("gameday") or str(Path(sys.executable).parent / "gameday")
    for name in ("gameday.service", "gameday.timer"):
        # the example's /opt/gameday clone does not exist here: verify against this checkout's gameday
        text = (SCHEDULE / name).read_text().replace("/opt/gameday/.venv/bin/gameday", gameday)
        (tmp_path / name).write_text(text)
    checked = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "gameday.timer"),
                              str(tmp_path / "gameday.service")], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr


def test_crontab_line():
    lines = [line for line in (SCHEDULE / "crontab").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    (line,) = lines
    fields = line.split(None, 5)
    assert cron_ok(" ".join(fields[:5])), line
    command = fields[5]
    assert "%" not in command  # cron turns % into a newline
    words = shlex.split(command)
    assert "flock" in words and words.index("flock") < next(i for i, w in enumerate(words) if w.endswith("/bin/gameday"))
    assert re.search(r">>\s*\S+\.log\s+2>&1\s*$", command)
    (argv,) = gameday_commands(command)
    assert parse(argv).params["fail_on_regression"]
