"""The local Postgres provider: where it lives and that it goes away."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest

from gameday.database.local import LocalPostgres

pytestmark = pytest.mark.postgres


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_as_root_a_private_tmpdir_falls_back_to_a_folder_the_server_user_reaches(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with LocalPostgres("private-tmp") as db:
        assert db.root is not None and db.root.parent == Path("/tmp")
        with psycopg.connect(db.dsn) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == "gameday"
        root = db.root
    assert not root.exists()


def test_stop_is_idempotent_and_removes_the_server(tmp_path):
    db = LocalPostgres("twice").start()
    server, root = db._server, db.root
    db.stop()
    db.stop()
    assert server is not None and server.poll() is not None
    assert root is not None and not root.exists()
