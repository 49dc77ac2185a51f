"""A live game day on a release migration: the people run the downgrade themselves; gameday
watches alembic_version and verifies what they did, as it verifies its own downgrade."""

from __future__ import annotations

import random
import re
import subprocess
import sys
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
def test_the_people_run_the_downgrade_and_gameday_verifies_where_they_landed(tmp_path: Path, person_target: str,
                                                                             live_game_day):
    acted: list[tuple[float, float]] = []

    def person(dsn: str, migrations: str) -> None:
        time.sleep(random.uniform(0.3, 1.5))
        sent = time.time()
        subprocess.run([sys.executable, "-m", "alembic", "-c", f"{migrations}/alembic.ini", "-x", f"dsn={dsn}",
                        "downgrade", person_target], check=True, capture_output=True, timeout=60)
        acted.append((sent, time.time()))

    run = live_game_day(tmp_path, FEATURE, HANDOVER, person, timeout=300)
    scenario = run.the_one_scenario()
    events = [e for part in (scenario, *scenario["steps"]) for e in part["events"]]
    [(sent, returned)] = acted
    [action] = [e for e in events if e["kind"] == "live-action"]
    assert sent <= action["data"]["at"] <= returned + 0.3, (sent, returned, action)  # read every 0.2 s
    if person_target == "0003":
        assert run.code == 0, run.said
        measured = {m["name"]: m for st in scenario["steps"] for m in st["measurements"]}
        assert "alembic_version moving" in measured["time to roll back the migration (people)"]["detail"]
    else:  # one revision too far: the scenario's checks judge what the people did
        assert run.code == 1 and scenario["status"] == "failed", run.said
        assert "at revision 0002, expected 0003" in scenario["error"], scenario["error"]
