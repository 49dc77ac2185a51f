"""The runbook parser on runbooks of our own shaped like the ones teams keep (tests/runbook/data)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gameday.runbook import RunbookError, parse_runbook
from gameday.runbook.shell import commands_in, timeouts

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def payments():
    return parse_runbook(DATA / "payments.md")


def by_line(book, line):
    return next(s for s in book.steps() if s.line == line)


def test_sections_have_titles_levels_and_lines(payments):
    assert [(s.title, s.level, s.line) for s in payments.sections] == [
        ("payments-api rollback", 1, 1), ("Before you start", 2, 5), ("Roll back", 2, 11), ("Database", 2, 44)]
    assert payments.title == "payments-api rollback"
    assert payments.last_updated == date(2026, 10, 1) and payments.last_updated_line == 3


def test_checklist_items_are_manual_unless_they_hold_a_command(payments):
    page, channel, pods = payments.find_section("Before you start").steps
    assert (page.kind, page.checked, page.text) == ("manual", False, "Page the payments lead.")
    assert (channel.kind, channel.checked) == ("manual", True)
    assert pods.kind == "shell" and pods.text == "kubectl -n pay get pods -l app=payments-api"


def test_a_numbered_items_bold_title_names_its_block(payments):
    record, undo, watch = payments.find_section("roll back").steps
    assert (record.kind, record.title) == ("manual", "Record the state")  # an unlabelled block of prose
    assert (undo.kind, undo.title, undo.language) == ("shell", "Undo", "bash")
    assert (watch.kind, watch.language) == ("shell", "sh")


def test_shell_commands_with_continuations_conditions_and_substitutions(payments):
    undo = by_line(payments, 22)
    assert undo.line_map == tuple(range(22, 31))
    assert [(c.line, c.end_line, c.program, c.cli) for c in undo.commands] == [
        (23, 24, "kubectl", "kubectl"), (25, 25, "kubectl", "kubectl"), (26, 26, "[", None),
        (27, 27, "echo", None), (29, 29, "./scripts/escalate.sh", "script")]
    assert "--to-revision=<revision-number>" in undo.commands[0].text
    watch = by_line(payments, 35)
    assert [(c.line, c.program) for c in watch.commands] == [(36, "curl"), (36, "jq"), (37, "echo"), (38, "sleep")]


def test_a_here_document_body_is_not_commands(payments):
    block = by_line(payments, 51)
    assert [(c.line, c.cli) for c in block.commands] == [(51, "psql"), (54, "aws")]


def test_sql_console_and_other_languages(payments):
    sql = by_line(payments, 47)
    assert (sql.kind, sql.text) == ("sql", "SELECT count(*) FROM payments;")
    console = by_line(payments, 58)
    assert (console.kind, console.text, console.line_map) == ("shell", "kubectl -n pay get deployment payments-api",
                                                            (58,))
    assert by_line(payments, 64).kind == "other"


def test_targets_are_tied_to_their_section(payments):
    roll_back = payments.find_section("Roll back")
    assert [(t.line, t.kind, t.seconds) for t in roll_back.targets] == [
        (12, "section", 90.0), (25, "timeout", 120.0), (42, "within", 180.0)]
    assert payments.target_of(roll_back).seconds == 90.0
    assert payments.find_section("Before you start").targets == ()


def test_finding_sections_ignores_case_numbering_and_rejects_unknown(payments):
    assert payments.find_section("ROLL BACK").line == 11
    assert payments.find_section("datab").line == 44  # a unique part of a title
    with pytest.raises(RunbookError, match="'Rollforward' is not a section of runbook") as caught:
        payments.find_section("Rollforward")
    assert "name one of: payments-api rollback; Before you start; Roll back; Database" in caught.value.one_line()


def test_plain_text_checklist():
    book = parse_runbook(DATA / "checklist.txt")
    assert book.format == "text" and book.last_updated == date(2026, 9, 30)
    assert [(s.title, s.level, s.line) for s in book.sections] == [
        ("Preparation", 1, 4), ("Look Around", 2, 5), ("ECS Path (If Used)", 2, 9), ("Verification", 1, 14),
        ("Check Endpoints", 2, 15)]
    shell = [(s.line, s.text) for s in book.steps() if s.kind == "shell"]
    assert shell == [
        (7, "kubectl get pods -n stage -l app=payments-api"),
        (8, "kubectl rollout history deployment/payments-api -n stage"),
        (11, "source .rollback_state"),
        (12, 'aws ecs update-service --cluster "$AWS_CLUSTER" --service payments-api --task-definition "$PREV_TASK"'),
        (13, "./scripts/snapshot.sh take"),  # "take(with a fresh id)": the parenthesis is prose
    ]
    manual = [s.text for s in book.steps() if s.kind == "manual"]
    assert "Read the history:" in manual and "Compare with yesterday" in manual
    assert [(t.line, t.kind, t.seconds) for t in book.find_section("Check Endpoints").targets] == [
        (18, "within", 300.0)]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.md", "does not exist"),
    (lambda p: p, "is a folder"),
    (lambda p: _write(p / "b.md", b"\x00\x01binary"), "is a binary file"),
    (lambda p: _write(p / "l.md", b"caf\xe9 # latin-1"), "is not UTF-8"),
    (lambda p: _write(p / "e.md", b"  \n"), "is empty"),
    (lambda p: _write(p / "n.md", b"# Notes\n\nNothing to do here.\n"), "has no steps"),
    (lambda p: _write(p / "x.pdf", b"kubectl get pods"), "is not markdown or text"),
])
def test_bad_runbooks_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(RunbookError, match=message) as caught:
        parse_runbook(make(tmp_path))
    assert "\n" not in caught.value.one_line()


@pytest.mark.parametrize(("line", "seconds"), [
    ("kubectl -n pay rollout status deployment/payments-api --timeout=1m30s", 90),
    ("kubectl wait --for=condition=Available deployment/payments-api --timeout 500ms", 0.5),
    ("kubectl rollout status deployment/payments-api --timeout=2m", 120),
])
def test_a_commands_own_timeout_is_a_target_as_go_reads_it(line, seconds):
    [target] = timeouts(commands_in(line, (7,)))
    assert (target.line, target.kind, target.seconds) == (7, "timeout", pytest.approx(seconds))
