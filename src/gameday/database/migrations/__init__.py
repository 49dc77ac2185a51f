"""Migrations that provably roll back: an alembic project run in a worker that can only reach the
scratch database (``project``), the catalog's view of a schema and its data (``catalog``), seed data
for whatever schema a revision has (``seed``), the per-revision round trip (``check``) and the
rehearsed downgrade of a release (``rehearsal``).

    from gameday.database.migrations import MigrationProject, check_migrations
"""

from gameday.database.migrations.check import Classification, MigrationCheck, check_migrations
from gameday.database.migrations.project import MigrationFailed, MigrationProject, ScratchDatabases
from gameday.database.migrations.seed import seed_database

__all__ = ["Classification", "MigrationCheck", "MigrationFailed", "MigrationProject", "ScratchDatabases",
           "check_migrations", "seed_database"]
