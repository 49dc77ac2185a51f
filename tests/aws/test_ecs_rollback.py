"""The ECS rollback rehearsal against moto with real task processes behind it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gameday.aws import ecs as ecs_api
from gameday.errors import RehearsalFailed
from gameday.journal import Fidelity, Journal
from gameday.procedures.ecs_rollback import EcsRollbackRehearsal


def _measure(journal: Journal, name: str):
    found = [m for m in journal.loose.measurements if m.name == name]
    assert found, f"no measurement {name}"
    return found[-1]


def test_rollback_from_a_crashing_release_is_stable_on_real_healthy_tasks(rehearsal: EcsRollbackRehearsal) -> None:
    rehearsal.start("1.0.0")
    rehearsal.deploy("2.0.0-crash")
    rehearsal.expect_deploy_failing()
    # the crashing release never reaches services-stable on its own
    assert ecs_api.wait_stable(rehearsal.ecs, rehearsal.spec.cluster, "orders", timeout=4) is None
    rehearsal.leave_rollback_state()

    result = rehearsal.roll_back_and_wait()
    served = rehearsal.verify("1.0.0")

    assert result.version == "1.0.0"
    assert len(served) == 3 and set(served.values()) == {"1.0.0"}
    tasks = ecs_api.running_tasks(rehearsal.ecs, rehearsal.spec.cluster, "orders")
    assert {t.last_status for t in tasks} == {"RUNNING"} and {t.health for t in tasks} == {"HEALTHY"}
    assert len({t.address for t in tasks}) == 3  # three processes, three addresses
    stable = _measure(rehearsal.journal, "ecs.rollback_time_to_stable")
    assert stable.fidelity == Fidelity.REAL and 0 < stable.value < 60
    assert _measure(rehearsal.journal, "ecs.rollback_update_service_accepted").fidelity == Fidelity.SIMULATED
    assert _measure(rehearsal.journal, "ecs.tasks_serving_previous_version").value == 100.0


def test_a_release_that_never_gets_ready_keeps_the_old_tasks_serving(rehearsal: EcsRollbackRehearsal) -> None:
    rehearsal.start("1.0.0", tasks=2)
    rehearsal.deploy("2.0.0-unready")
    rehearsal.expect_deploy_failing()

    service = ecs_api.describe_service(rehearsal.ecs, rehearsal.spec.cluster, "orders")
    assert [d["status"] for d in service["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert service["deployments"][0]["runningCount"] == 0
    # minimumHealthyPercent 100: the old release still answers every request
    versions = {ecs_api.served_version(t.address, reader=rehearsal.spec.release_reader) for t in ecs_api.running_tasks(rehearsal.ecs, rehearsal.spec.cluster, "orders")
                if t.task_definition == rehearsal.versions["1.0.0"]}
    assert versions == {"1.0.0"}


def test_missing_rollback_state_file_fails_the_rehearsal(rehearsal: EcsRollbackRehearsal) -> None:
    rehearsal.start("1.0.0", tasks=1)
    rehearsal.deploy("2.0.0-crash")
    with pytest.raises(RehearsalFailed, match="does not exist"):
        rehearsal.roll_back()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: "\n".join(line for line in text.splitlines() if not line.startswith("PREV_SHA")), "has no PREV_SHA"),
        (lambda text: text.replace(":1\n", ":99\n"), "PREV_TASK=orders-.*:99 .* not a registered"),
        (lambda text: re.sub("PREV_TASK=.*", "PREV_TASK=", text), "PREV_TASK is empty"),
        (lambda text: text.replace("BACKUP_FILE=''", "BACKUP_FILE=/nonexistent/backup.dump"), "BACKUP_FILE=/nonexistent"),
    ],
    ids=["no-prev-sha", "unregistered-prev-task", "empty-prev-task", "backup-file-missing"],
)
def test_broken_rollback_state_is_refused_naming_the_field(rehearsal: EcsRollbackRehearsal, edit, message) -> None:
    rehearsal.start("1.0.0", tasks=1)
    rehearsal.deploy("2.0.0-crash")
    path = rehearsal.leave_rollback_state()
    path.write_text(edit(path.read_text()))
    with pytest.raises(RehearsalFailed, match=message):
        rehearsal.roll_back()
    # nothing was rolled back: the service still points at the bad release
    service = ecs_api.describe_service(rehearsal.ecs, rehearsal.spec.cluster, "orders")
    assert service["taskDefinition"] == rehearsal.versions["2.0.0-crash"]


def test_unreadable_rollback_state_file(rehearsal: EcsRollbackRehearsal) -> None:
    rehearsal.state_path.mkdir()  # a directory where the file should be: unreadable as a file
    with pytest.raises(RehearsalFailed, match="not readable"):
        rehearsal.roll_back()


def test_rollback_to_a_broken_previous_image_is_not_stable(rehearsal: EcsRollbackRehearsal) -> None:
    rehearsal.start("1.0.0", tasks=2)
    rehearsal.deploy("2.0.0-unready")
    rehearsal.deploy("2.0.0-crash")  # the "previous" release is now the unready one
    rehearsal.leave_rollback_state()
    with pytest.raises(RehearsalFailed, match=r"not stable 6s after rolling back to orders-\w+:2"):
        rehearsal.roll_back_and_wait(timeout=6)


def test_verification_catches_a_service_left_on_the_new_release(rehearsal: EcsRollbackRehearsal) -> None:
    rehearsal.start("1.0.0", tasks=2)
    rehearsal.deploy("1.1.0")  # a healthy release, stable; the rollback is "reported" but never issued
    assert ecs_api.wait_stable(rehearsal.ecs, rehearsal.spec.cluster, "orders", timeout=30) is not None
    rehearsal.leave_rollback_state()
    with pytest.raises(RehearsalFailed, match=r"runs orders-\w+:2, not PREV_TASK orders-\w+:1"):
        rehearsal.verify()


def test_rollback_state_matches_the_checklist_fields(rehearsal: EcsRollbackRehearsal, tmp_path: Path) -> None:
    rehearsal.start("1.0.0", tasks=1)
    rehearsal.deploy("1.1.0")
    text = rehearsal.leave_rollback_state().read_text()
    keys = [line.split("=", 1)[0] for line in text.splitlines()]
    assert keys == ["DEPLOYMENT_ID", "PREV_TASK", "PREV_SHA", "BACKUP_FILE"]
    assert f"PREV_TASK={rehearsal.spec.family}:1" in text
