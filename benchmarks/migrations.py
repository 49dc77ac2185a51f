"""Migration check benchmark: seconds per revision on a generated history of GAMEDAY_BENCH_REVISIONS
revisions (default 100; the test corpus's mix of tables, columns, indexes, backfills and CHECK
constraints), against its anchor measured in the same run: a plain ``alembic upgrade`` of the
same history from base to head, one revision at a time, in the same worker.

    python benchmarks/migrations.py
    GAMEDAY_BENCH_REVISIONS=30 GAMEDAY_BENCH_ROWS=1000 python benchmarks/migrations.py
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from gameday.database.local import LocalPostgres
from gameday.database.migrations.check import check_migrations
from gameday.database.migrations.project import MigrationProject, ScratchDatabases

REVISIONS = int(os.environ.get("GAMEDAY_BENCH_REVISIONS", "100"))
ROWS = int(os.environ.get("GAMEDAY_BENCH_ROWS", "200"))


def _corpus():  # type: ignore[no-untyped-def]
    """The test corpus's history writer (tests/database/conftest.py), so both measure the same history."""
    path = Path(__file__).resolve().parent.parent / "tests" / "database" / "conftest.py"
    spec = importlib.util.spec_from_file_location("migration_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    corpus = _corpus()
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres("bench-migrations") as server:
        project_dir = corpus.write_history(Path(tmp) / "history", corpus.history_of_kinds(REVISIONS))
        with MigrationProject(project_dir) as project, ScratchDatabases(server.dsn, prefix="bench") as scratch:
            chain = [r.revision for r in project.history()]
            target = scratch.create("anchor")
            began = time.monotonic()
            for revision in chain:
                project.upgrade(target, revision)
            anchor = (time.monotonic() - began) / len(chain)
        stamps: list[float] = []
        began = time.monotonic()
        check = check_migrations(project_dir, dsn=server.dsn, rows=ROWS,
                                 progress=lambda i, n, v: stamps.append(time.monotonic()))
        total = time.monotonic() - began
    per_revision = [b - a for a, b in zip([began, *stamps], stamps, strict=False)]
    verdicts = Counter(v.classification.value for v in check.verdicts)
    print(f"history: {REVISIONS} revisions, {ROWS} seeded rows per table; cores {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"verdicts: {dict(verdicts)}; need expand/contract: {sum(v.needs_expand_contract for v in check.verdicts)}")
    print(f"check: {total:.1f} s, {total / REVISIONS:.3f} s per revision "
          f"(median {statistics.median(per_revision):.3f}, max {max(per_revision):.3f})")
    print(f"anchor (alembic upgrade, one revision at a time): {anchor:.3f} s per revision")
    print(f"ratio check/anchor per revision: {total / REVISIONS / anchor:.1f}x")


if __name__ == "__main__":
    main()
