"""Database benchmarks: local Postgres cold start; snapshot + restore + verify of a generated
database of about GAMEDAY_BENCH_DB_MB megabytes (default 1024), logical (pg_dump custom and
directory formats) and physical (pg_basebackup, restored by starting a copy), against a raw copy
of the same data directory, in the same run.

    python benchmarks/database.py            # ~1 GB, a few minutes on 2 cores
    GAMEDAY_BENCH_DB_MB=100 python benchmarks/database.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from gameday.database import checksums
from gameday.database.dsn import Dsn
from gameday.database.local import LocalPostgres
from gameday.database.rehearsal import BackupRehearsal

TARGET_MB = int(os.environ.get("GAMEDAY_BENCH_DB_MB", "1024"))


def cold_start(runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.monotonic()
        with LocalPostgres("bench-cold"):
            times.append(time.monotonic() - began)
    return times


def generate(db: LocalPostgres, megabytes: int) -> float:
    began = time.monotonic()
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, amount_cents int NOT NULL,"
                     " created_at timestamptz NOT NULL DEFAULT now(), note text)")
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, order_id bigint, kind text, payload text)")
        batch = 200_000
        while _size_mb(conn) < megabytes:
            conn.execute("INSERT INTO orders (customer, amount_cents, note) SELECT 'customer ' || (g %% 5000), g %% 99999,"
                         " repeat(md5(g::text), 3) FROM generate_series(1, %s) g", (batch,))
            conn.execute("INSERT INTO events (order_id, kind, payload) SELECT g, 'created', md5(g::text) || md5((g+1)::text)"
                         " FROM generate_series(1, %s) g", (batch,))
        conn.execute("CHECKPOINT")
    return time.monotonic() - began


def _size_mb(conn: psycopg.Connection) -> float:
    return conn.execute("SELECT pg_database_size(current_database()) / 1e6").fetchone()[0]


def rehearse(db: LocalPostgres, fmt: str) -> dict[str, float]:
    """``fmt``: a pg_dump format (custom, directory), or physical (pg_basebackup, started as a copy)."""
    if fmt != "physical":
        os.environ["GAMEDAY_DUMP_FORMAT"] = fmt
    began = time.monotonic()
    with BackupRehearsal(Dsn.parse(db.dsn, use_env=False)) as rehearsal:
        snap = rehearsal.snapshot("bench", method="physical" if fmt == "physical" else "logical")
        t_snap = time.monotonic() - began
        rehearsal.restore()
        rehearsal.require_matches_snapshot()
        restore = rehearsal.require_restored().duration_s
        total = time.monotonic() - began
        size = snap.size_bytes / 1e6
        shutil.rmtree(snap.path.parent, ignore_errors=True)
    return {"snapshot_s": t_snap, "restore_s": restore, "total_s": total, "dump_mb": size}


def checksum_speed(db: LocalPostgres) -> dict[str, float]:
    """Seconds to read the counts and checksums of every table, per algorithm (cache warmed first)."""
    times = {}
    with psycopg.connect(db.dsn) as conn:
        checksums.row_counts(conn, checksums.user_tables(conn))
        for algorithm in ("md5-60", "hash64"):
            began = time.monotonic()
            checksums.capture(conn, algorithm=algorithm)
            times[algorithm] = time.monotonic() - began
            conn.rollback()
    return times


def raw_copy(db: LocalPostgres) -> float:
    """Copy the data directory as a file-level backup would (server stopped for consistency)."""
    subprocess.run([db.tool("pg_ctl"), "-D", str(db.datadir), "-w", "stop"], check=True, capture_output=True,
                   user=db.datadir.stat().st_uid if os.geteuid() == 0 else None)
    dest = Path(tempfile.mkdtemp(prefix="gameday-bench-raw-"))
    try:
        began = time.monotonic()
        shutil.copytree(db.datadir, dest / "data", symlinks=True)
        return time.monotonic() - began
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def main() -> int:
    starts = cold_start()
    print(f"local Postgres cold start: median {statistics.median(starts):.2f} s (runs: "
          + ", ".join(f"{t:.2f}" for t in starts) + ")")
    with LocalPostgres("bench") as db:
        gen = generate(db, TARGET_MB)
        with psycopg.connect(db.dsn) as conn:
            size = _size_mb(conn)
            rows = conn.execute("SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM events)").fetchone()[0]
        print(f"generated database: {size:.0f} MB, {rows} rows in {gen:.1f} s")
        sums = checksum_speed(db)
        print("checksums of every table: " + ", ".join(f"{name} {t:.1f} s" for name, t in sums.items())
              + f"; ratio md5-60 / hash64: {sums['md5-60'] / sums['hash64']:.1f}x")
        results = {fmt: rehearse(db, fmt) for fmt in ("custom", "directory", "physical")}
        for fmt, r in results.items():
            print(f"{fmt:>9}: snapshot {r['snapshot_s']:.1f} s (dump {r['dump_mb']:.0f} MB), "
                  f"restore {r['restore_s']:.1f} s, snapshot+restore+verify {r['total_s']:.1f} s")
        raw = raw_copy(db)
        print(f"raw copy of the data directory: {raw:.1f} s")
        for fmt, r in results.items():
            print(f"ratio snapshot+restore+verify / raw copy ({fmt}): {r['total_s'] / raw:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
