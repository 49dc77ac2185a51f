"""A live game day on a release migration: the people run the downgrade themselves; gameday
watches alembic_version and verifies what they did, as it verifies its own downgrade."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres
HANDOVER = re.compile(r"export DATABASE_URL=(\S+)\s+\(alembic migrations (\S+);")
FEATURE = """Feature: a live migration rollback
  Scenario: The people roll release 1.3.0's migration back
    Given a database at release 1.2.0 with migrations up to 0003 and 1000 seeded orders
    And release 1.3.0 has applied migration 0004
    When the release migration 0004 is rolled back with alembic downgrade
    Then the database is at revision 0003
    And its schema matches what revision 0003 creates
    And all 1000 seeded orders are unchanged
"""


@pytest.mark.parametrize("person_target", ["0003", "0002"])
def test_the_people_run_the_downgrade_and_gameday_verifies_where_they_landed(tmp_path: Path, person_target: str):
    (tmp_path / "live.feature").write_text(FEATURE)
    env = {**os.environ, "GAMEDAY_LIVE_HINT_AFTER": "600", "GAMEDAY_LIVE_GIVE_UP": "120"}
    run = subprocess.Popen([sys.executable, "-m", "gameday.cli", "run", "--live", "live.feature", "--reports", "reports",
                            "--run-id", "live"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, stdin=subprocess.DEVNULL)
    output: list[str] = []
    acted: list[tuple[float, float]] = []

    def person() -> None:
        assert run.stdout is not None
        for line in run.stdout:
            output.append(line)
            found = HANDOVER.search(line)
            if found:
                dsn, migrations = found.groups()
                time.sleep(random.uniform(0.3, 1.5))
                sent = time.time()
                subprocess.run([sys.executable, "-m", "alembic", "-c", f"{migrations}/alembic.ini", "-x", f"dsn={dsn}",
                                "downgrade", person_target], check=True, capture_output=True, timeout=60)
                acted.append((sent, time.time()))

    reader = threading.Thread(target=person, daemon=True)
    reader.start()
    code = run.wait(timeout=300)
    reader.join(timeout=30)
    said = "".join(output[-30:])
    [scenario] = json.loads((tmp_path / "reports" / "live" / "journal.json").read_text())["scenarios"]
    events = [e for part in (scenario, *scenario["steps"]) for e in part["events"]]
    [(sent, returned)] = acted
    [action] = [e for e in events if e["kind"] == "live-action"]
    assert sent <= action["data"]["at"] <= returned + 0.3, (sent, returned, action)  # read every 0.2 s
    if person_target == "0003":
        assert code == 0, said
        measured = {m["name"]: m for st in scenario["steps"] for m in st["measurements"]}
        assert "alembic_version moving" in measured["time to roll back the migration (people)"]["detail"]
    else:  # one revision too far: the scenario's checks judge what the people did
        assert code == 1 and scenario["status"] == "failed", said
        assert "at revision 0002, expected 0003" in scenario["error"], scenario["error"]
