"""RDS snapshot/restore: moto's API flow (simulated) paired with a real Postgres restore."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from gameday.aws.moto_server import MotoServer
from gameday.database.dsn import Dsn
from gameday.database.local import LocalPostgres
from gameday.database.rehearsal import BackupRehearsal
from gameday.database.seed import seed_orders
from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Fidelity, Journal
from gameday.procedures.rds_snapshot import RdsSnapshotRehearsal, snapshot_identifier

needs_postgres = pytest.mark.skipif(shutil.which("pg_config") is None, reason="PostgreSQL binaries not installed")


@pytest.fixture(scope="module")
def rds_moto() -> Iterator[MotoServer]:
    with MotoServer(run_tasks=False) as server:  # RDS needs API state only
        yield server


def test_snapshot_identifier_is_a_valid_rds_name() -> None:
    assert snapshot_identifier("orders-db", "1.4.0") == "orders-db-pre-1-4-0"
    assert snapshot_identifier("orders-db", "2.0.0-rc.1+build7") == "orders-db-pre-2-0-0-rc-1-build7"


def test_api_flow_is_recorded_as_simulated(rds_moto: MotoServer) -> None:
    journal = Journal()
    rds = RdsSnapshotRehearsal(rds_moto, "api-only-db", journal=journal)
    rds.create_instance()
    snapshot = rds.snapshot("1.4.0")
    scratch = rds.restore()
    rds.require_snapshot_tagged("1.4.0")
    rds.require_scratch_available(60)
    with pytest.raises(RehearsalFailed, match="tagged release=1.4.0, expected 1.5.0"):
        rds.require_snapshot_tagged("1.5.0")
    with pytest.raises(RehearsalFailed, match="only API state"):
        rds.require_data_matches()  # without real data the rehearsal cannot claim a restore
    figures = {m.name: m for m in journal.loose.measurements}
    assert figures["rds.snapshot_available"].fidelity == Fidelity.SIMULATED
    assert figures["rds.restore_to_available"].fidelity == Fidelity.SIMULATED
    assert {e.data.get("snapshot") for e in journal.loose.events if e.kind == "rds.restore"} == {snapshot}
    assert scratch == "api-only-db-restore-check"


def test_bad_identifiers_are_refused(rds_moto: MotoServer) -> None:
    with pytest.raises(ConfigError, match="not valid"):
        RdsSnapshotRehearsal(rds_moto, "1-starts-with-digit")
    rds = RdsSnapshotRehearsal(rds_moto, "same-db")
    rds.create_instance()
    rds.snapshot("1.0.0")
    with pytest.raises(ConfigError, match="is the source instance"):
        rds.restore("same-db")


@pytest.mark.postgres
@needs_postgres
def test_restore_gives_back_real_rows(rds_moto: MotoServer) -> None:
    journal = Journal()
    with LocalPostgres("rds-source", journal=journal) as source:
        seed_orders(source.dsn, 500)
        with BackupRehearsal(Dsn.parse(source.dsn, use_env=False), journal=journal) as data:
            rds = RdsSnapshotRehearsal(rds_moto, "orders-db", data=data, journal=journal)
            rds.create_instance()
            rds.snapshot("1.4.0")
            rds.restore()
            rds.require_data_matches()
            data.require_rows("orders", 500)
    real = [m for m in journal.loose.measurements if m.fidelity == Fidelity.REAL]
    assert any(m.name == "restored rows in orders" and m.value == 500 for m in real)
    simulated = {m.name for m in journal.loose.measurements if m.fidelity == Fidelity.SIMULATED}
    assert simulated == {"rds.snapshot_available", "rds.restore_to_available"}
