"""The container database provider (testcontainers) against a real Docker engine: the image built
here, start and ready wait, snapshot, restore into a scratch container, verify, stop; the shipped
backup features with GAMEDAY_DATABASE=container; containers of a killed gameday reaped."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gameday.containers import OWNER_LABEL, sweep_orphans
from gameday.database.container import PostgresContainerDatabase
from gameday.database.dsn import Dsn
from gameday.database.rehearsal import BackupRehearsal
from gameday.errors import EnvironmentNotReady
from gameday.journal import Journal, load, unclosed

pytestmark = [pytest.mark.docker, pytest.mark.postgres]  # docker_engine skips where no engine can run
REPO = Path(__file__).resolve().parents[2]


def test_the_image_built_here_honours_the_official_images_variables(docker_env, docker_engine, pg_tag):
    client = docker_engine.client()
    started = []
    try:
        refused = client.containers.run(pg_tag, network_mode="host", detach=True)
        assert refused.wait(timeout=60)["StatusCode"] == 1
        assert "POSTGRES_PASSWORD is not set" in refused.logs().decode()
        refused.remove()
        for env, user, database in (({"POSTGRES_PASSWORD": "s3cret"}, "postgres", "postgres"),
                                    ({"POSTGRES_PASSWORD": "s3cret", "POSTGRES_USER": "orders_owner",
                                      "POSTGRES_DB": "orders"}, "orders_owner", "orders")):
            port = _free()
            started.append(client.containers.run(pg_tag, ["-c", "listen_addresses=127.0.0.1", "-c", f"port={port}"],
                                                 environment=env, network_mode="host", detach=True))
            dsn = f"postgresql://{user}:s3cret@127.0.0.1:{port}/{database}"
            with _connect(dsn) as conn:
                row = conn.execute("SELECT current_user, current_database(), setting FROM pg_settings "
                                   "WHERE name = 'listen_addresses'").fetchone()
            assert row == (user, database, "127.0.0.1")
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(dsn.replace("s3cret", "wrong"), connect_timeout=5).close()
    finally:
        for container in started:
            container.remove(force=True)
        client.close()


def _free() -> int:
    from gameday.lifecycle import free_port

    return free_port()


def _connect(dsn: str) -> psycopg.Connection:
    from gameday.lifecycle import wait_until

    return wait_until(lambda: psycopg.connect(dsn, connect_timeout=2), timeout=60, what=dsn,
                      transient=(psycopg.OperationalError,))


def test_snapshot_restore_into_a_scratch_container_verify_and_stop(docker_env, docker_engine, pg_tag):
    journal = Journal()
    with PostgresContainerDatabase("source", database="orders", journal=journal) as db:
        assert db.image == pg_tag  # built here, found in the engine: nothing was pulled
        with psycopg.connect(db.dsn) as conn:
            conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, "
                         "created_at timestamptz NOT NULL DEFAULT now())")
            conn.execute("INSERT INTO orders (customer) SELECT 'c' || g FROM generate_series(1, 500) g")
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)

        def scratch(name: str) -> PostgresContainerDatabase:
            return PostgresContainerDatabase("scratch", database=name, image=db.image, journal=journal)

        with BackupRehearsal(Dsn.parse(db.dsn, use_env=False), journal=journal, scratch=scratch) as rehearsal:
            rehearsal.snapshot("1.4.0")
            rehearsal.restore(expect={"orders": 500})
            assert isinstance(rehearsal._scratch, PostgresContainerDatabase)  # a container, not a local server
            rehearsal.require_matches_snapshot()
            rehearsal.require_source_untouched()
            assert Dsn.parse(rehearsal.scratch_dsn, use_env=False).port != Dsn.parse(db.dsn, use_env=False).port
    starts = [e for e in journal.loose.events if e.kind == "database.start"]
    assert len(starts) == 2 and all(pg_tag in e.message and "127.0.0.1" in e.message for e in starts)
    assert all(e.data["ready_s"] > 0 for e in starts)
    assert "s3cret" not in json.dumps(journal.to_dict()) and db._password not in json.dumps(journal.to_dict())


def test_containers_a_killed_gameday_left_are_reaped_and_live_ones_kept(docker_env, docker_engine, pg_tag):
    dead = subprocess.Popen(["true"])
    dead.wait()
    client = docker_engine.client()
    try:
        here = socket.gethostname()
        orphan = client.containers.create(pg_tag, labels={OWNER_LABEL: f"{here}:{dead.pid}"})
        kept = client.containers.create(pg_tag, labels={OWNER_LABEL: f"{here}:{__import__('os').getpid()}"})
        elsewhere = client.containers.create(pg_tag, labels={OWNER_LABEL: f"another-host:{dead.pid}"})
        assert sweep_orphans(client) == [orphan.name]
        names = {c.name for c in client.containers.list(all=True)}
        assert names == {kept.name, elsewhere.name}
        kept.remove()
        elsewhere.remove()
    finally:
        client.close()


def test_an_image_the_engine_lacks_and_cannot_pull_is_one_line(docker_env, monkeypatch):
    monkeypatch.setenv("GAMEDAY_POSTGRES_IMAGE", "acme/postgres-that-is-not-here:1")
    provider = PostgresContainerDatabase()
    with pytest.raises(EnvironmentNotReady) as caught:
        provider.start()
    provider.stop()
    line = caught.value.one_line()
    assert "\n" not in line and "acme/postgres-that-is-not-here:1" in line and "did not start" in line


def test_k3s_without_its_image_says_a_registry_must_provide_it(docker_env, docker_engine):
    from gameday.cluster.docker import DEFAULT_IMAGE, K3sCluster

    cluster = K3sCluster()
    with pytest.raises(EnvironmentNotReady) as caught:
        cluster.start()
    cluster.stop()
    line = caught.value.one_line()
    assert DEFAULT_IMAGE in line and "cannot be pulled" in line and "GAMEDAY_CLUSTER=local" in line


@pytest.mark.slow
def test_the_backup_features_pass_with_the_container_database(tmp_path, docker_env, pg_tag):
    result = subprocess.run([sys.executable, "-m", "gameday.cli", "run", str(REPO / "features" / "backup_restore.feature"),
                             "--reports", "reports", "--run-id", "c1"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, stdin=subprocess.DEVNULL, env={**docker_env, "GAMEDAY_DATABASE": "container"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    path = tmp_path / "reports" / "c1" / "journal.json"
    journal = load(path)
    assert unclosed(journal) == []
    assert journal["environment"]["providers"]["database"] == {"name": "container", "why": "explicit"}
    assert len(journal["scenarios"]) == 4 and all(s["status"] == "passed" for s in journal["scenarios"])
    starts = [e["message"] for s in journal["scenarios"] for part in (s, *s["steps"]) for e in part["events"]
              if e["kind"] == "database.start"]
    # every scenario: the source and (where a restore ran) the scratch server were containers of the image built here
    assert len(starts) >= 6 and all(pg_tag in m and "in a container on 127.0.0.1" in m for m in starts), starts
