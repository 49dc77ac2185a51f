"""Run features/migration_rollback.feature through the gameday pytest plugin."""

import pytest
from pytest_bdd import scenarios

from gameday.paths import shipped

pytestmark = pytest.mark.postgres

scenarios(str(shipped("features") / "migration_rollback.feature"))
