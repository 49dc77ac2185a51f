"""The shipped AWS features, run through the step library (pytest-bdd) with the plugin's journal."""

from __future__ import annotations

import pytest
from pytest_bdd import scenarios

from gameday.paths import shipped
from gameday.procedures.ecs_rollback import EcsService


@pytest.fixture
def ecs_service_spec(gameday_project) -> EcsService:
    """1 s health checks (below the ECS minimum of 5 s) keep the suite short."""
    return EcsService.of(gameday_project.service(), health_interval_s=1, health_retries=2, stable_timeout_s=60)


scenarios(str(shipped("features") / "ecs_rollback.feature"))
scenarios(str(shipped("features") / "rds_snapshot_restore.feature"))
