"""RDS snapshot and restore: the API flow (moto) paired with a real data restore.

The runbook takes a manual DB snapshot tagged with the release before deploying, and
restores it to a scratch instance to prove it.  Against moto the RDS calls are API
state only (SIMULATED: the instance has no data and "available" means nothing), so
each API act is paired with the same act on real data through
:class:`gameday.database.rehearsal.BackupRehearsal`: pg_dump of the local Postgres
that stands in for the instance, restored into a scratch Postgres and compared table
by table (REAL row counts and checksums).

    rds = RdsSnapshotRehearsal(aws, "orders-db", data=BackupRehearsal(dsn), journal=journal)
    rds.create_instance()
    rds.snapshot("1.4.0")
    rds.restore("orders-db-restore-check")
    rds.require_data_matches()
"""

from __future__ import annotations

import math
import re
import secrets
import time
from contextlib import suppress
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from gameday.aws.target import REHEARSAL_TAG, TargetRef, rds_tags, require_rehearsal
from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Fidelity, Journal

_IDENTIFIER = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}$")


def snapshot_identifier(instance: str, release: str) -> str:
    """``orders-db`` + ``1.4.0`` -> ``orders-db-pre-1-4-0`` (RDS allows letters, digits, hyphens)."""
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", release).strip("-")
    return f"{instance}-pre-{cleaned}"[:63].rstrip("-")


class RdsSnapshotRehearsal:
    def __init__(self, aws: Any, instance: str, *, data: Any = None, journal: Journal | None = None,
                 wait_timeout: float = 60.0) -> None:
        if not _IDENTIFIER.match(instance):
            raise ConfigError(f"RDS instance identifier {instance!r} is not valid",
                              fix="start with a letter; letters, digits and hyphens only")
        self.aws = aws
        self.instance = instance
        self.data = data  # a gameday.database.rehearsal.BackupRehearsal, or None for API only
        self.journal = journal or Journal()
        self.wait_timeout = wait_timeout
        self.rds = aws.client("rds")
        self.snapshot_id: str | None = None
        self.release: str | None = None
        self.scratch: str | None = None
        self.restore_seconds: float | None = None
        self.restore_error: RehearsalFailed | None = None

    # -- acts -------------------------------------------------------------------------
    def create_instance(self, name: str | None = None) -> str:
        """The instance the release writes to (moto only; real AWS uses an existing one)."""
        if name is not None:
            self.instance = name
        try:
            found = self.rds.describe_db_instances(DBInstanceIdentifier=self.instance)["DBInstances"][0]
            return str(found["DBInstanceArn"])
        except ClientError:
            pass
        created = self.rds.create_db_instance(
            DBInstanceIdentifier=self.instance, Engine="postgres", DBInstanceClass="db.t3.micro",
            AllocatedStorage=20, MasterUsername="gameday",
            MasterUserPassword=secrets.token_urlsafe(16),  # throwaway; never stored or journaled
            Tags=[{"Key": REHEARSAL_TAG, "Value": "true"}],
        )["DBInstance"]
        self._wait("db_instance_available", "instance", DBInstanceIdentifier=self.instance)
        self.journal.event("rds.instance", f"RDS instance {self.instance} available", fidelity=Fidelity.SIMULATED.value)
        return str(created["DBInstanceArn"])

    def snapshot(self, release: str) -> str:
        """Manual DB snapshot tagged ``release=<release>``, plus the real pg_dump of the data."""
        self._guard()
        self.release = release
        self.snapshot_id = snapshot_identifier(self.instance, release)
        started = time.monotonic()
        self.rds.create_db_snapshot(
            DBSnapshotIdentifier=self.snapshot_id, DBInstanceIdentifier=self.instance,
            Tags=[{"Key": "release", "Value": release}, {"Key": REHEARSAL_TAG, "Value": "true"}],
        )
        self._wait("db_snapshot_available", "snapshot", DBSnapshotIdentifier=self.snapshot_id)
        self.journal.measure("rds.snapshot_available", time.monotonic() - started, "s", fidelity=Fidelity.SIMULATED,
                             detail=f"snapshot {self.snapshot_id} of {self.instance} (API state only)")
        self.journal.event("rds.snapshot", f"DB snapshot {self.snapshot_id} of {self.instance} tagged release={release}",
                           fidelity=Fidelity.SIMULATED.value, snapshot=self.snapshot_id, instance=self.instance)
        if self.data is not None:
            self.data.snapshot(release)  # the real dump; it journals its own REAL figures
        return self.snapshot_id

    def restore(self, scratch: str | None = None) -> str:
        """Restore the snapshot to a scratch instance, wait until available, restore the data."""
        if self.snapshot_id is None:
            raise RehearsalFailed("no DB snapshot to restore", fix="take the snapshot first")
        self.scratch = scratch or f"{self.instance}-restore-check"
        if self.scratch == self.instance:
            raise ConfigError(f"scratch instance {self.scratch} is the source instance", fix="give the scratch instance its own name")
        started = time.monotonic()
        try:
            self.rds.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=self.scratch, DBSnapshotIdentifier=self.snapshot_id,
                Tags=[{"Key": REHEARSAL_TAG, "Value": "true"}, {"Key": "restored-from", "Value": self.snapshot_id}],
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            self.restore_error = RehearsalFailed(
                f"RDS refused to restore {self.snapshot_id} to {self.scratch}: {error.get('Code')}: {error.get('Message')}")
            self.journal.event("rds.restore_refused", self.restore_error.one_line(), fidelity=Fidelity.SIMULATED.value)
            self.scratch = None
            return ""
        self._wait("db_instance_available", "scratch instance", DBInstanceIdentifier=self.scratch)
        self.restore_seconds = time.monotonic() - started
        self.journal.measure("rds.restore_to_available", self.restore_seconds, "s", fidelity=Fidelity.SIMULATED,
                             detail=f"{self.scratch} from {self.snapshot_id} (API state only: moto has no data)")
        self.journal.event("rds.restore", f"scratch instance {self.scratch} restored from {self.snapshot_id}",
                           fidelity=Fidelity.SIMULATED.value, scratch=self.scratch, snapshot=self.snapshot_id)
        if self.data is not None:
            self.data.restore()  # the real restore into a scratch Postgres; REAL figures
        return self.scratch

    def delete_snapshot(self) -> None:
        """The snapshot disappears (retention job, wrong account): the restore must notice."""
        if self.snapshot_id is not None:
            self.rds.delete_db_snapshot(DBSnapshotIdentifier=self.snapshot_id)
            self.journal.event("rds.snapshot_deleted", f"DB snapshot {self.snapshot_id} deleted", fidelity=Fidelity.SIMULATED.value)

    def delete_scratch(self) -> None:
        if self.scratch is None:
            return
        with suppress(ClientError):
            self.rds.delete_db_instance(DBInstanceIdentifier=self.scratch, SkipFinalSnapshot=True)
        self.scratch = None

    # -- checks -------------------------------------------------------------------------
    def require_snapshot_tagged(self, release: str) -> None:
        if self.snapshot_id is None:
            raise RehearsalFailed("no DB snapshot was taken")
        snapshot = self.rds.describe_db_snapshots(DBSnapshotIdentifier=self.snapshot_id)["DBSnapshots"][0]
        tags = {t["Key"]: t["Value"] for t in self.rds.list_tags_for_resource(ResourceName=snapshot["DBSnapshotArn"])["TagList"]}
        if tags.get("release") != release:
            raise RehearsalFailed(f"DB snapshot {self.snapshot_id} is tagged release={tags.get('release')}, expected {release}")

    def require_restore_refused(self, naming: str) -> str:
        if self.restore_error is None:
            raise RehearsalFailed("the restore went ahead: a missing snapshot would not be noticed")
        line = self.restore_error.one_line()
        if naming not in line:
            raise RehearsalFailed(f"the restore failed, but without naming {naming}: {line}")
        return line

    def require_scratch_available(self, seconds: float) -> None:
        if self.restore_error is not None:
            raise self.restore_error
        if self.scratch is None:
            raise RehearsalFailed("nothing was restored", fix="restore the snapshot first")
        found = self.rds.describe_db_instances(DBInstanceIdentifier=self.scratch)["DBInstances"][0]
        if found["DBInstanceStatus"] != "available":
            raise RehearsalFailed(f"scratch instance {self.scratch} is {found['DBInstanceStatus']}, not available")
        took = self.restore_seconds
        if took is not None and took > seconds:
            raise RehearsalFailed(f"scratch instance took {took:.1f} s to become available, the target is {seconds:g} s")

    def require_data_matches(self) -> None:
        """The real part: every table of the restored data equals the snapshot (rows + checksums)."""
        if self.restore_error is not None:
            raise self.restore_error
        if self.data is None:
            raise RehearsalFailed("no data rehearsal paired with the RDS snapshot: only API state was checked")
        self.data.require_matches_snapshot()

    # -- helpers ---------------------------------------------------------------------------
    def _wait(self, waiter: str, what: str, **ids: str) -> None:
        delay = 1
        try:
            self.rds.get_waiter(waiter).wait(
                **ids, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(self.wait_timeout / delay))}
            )
        except WaiterError as exc:
            raise RehearsalFailed(f"RDS {what} {next(iter(ids.values()))} not available after {self.wait_timeout:g}s: {exc}") from None

    def _guard(self) -> None:
        instance = self.rds.describe_db_instances(DBInstanceIdentifier=self.instance)["DBInstances"][0]
        require_rehearsal(self.aws, TargetRef("RDS instance", self.instance, instance["DBInstanceArn"]),
                          tags_of=rds_tags(self.rds))
