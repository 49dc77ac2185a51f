"""Container benchmarks, in one run (root, Debian's docker.io): gameday's own Docker engine from
start to answering; the PostgreSQL image built here, cold (root filesystem assembled from the
machine's PostgreSQL, then imported) and cached (the cached root filesystem imported into an
empty engine); container Postgres from start to accepting connections against the local
provider's, median of GAMEDAY_BENCH_RUNS (default 5) each.

    python benchmarks/containers.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from gameday.containers import postgres_image
from gameday.containers.engine import DockerEngine
from gameday.database.container import PostgresContainerDatabase
from gameday.database.local import LocalPostgres

RUNS = int(os.environ.get("GAMEDAY_BENCH_RUNS", "5"))


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main() -> None:
    pg = postgres_image.installed()
    starts: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        cold_tar = Path(scratch) / "rootfs.tar"
        for _ in range(3):
            with DockerEngine() as engine:
                assert engine.start_s is not None
                starts.append(engine.start_s)
        with DockerEngine() as engine:
            client = engine.client()
            try:
                began = time.monotonic()
                postgres_image.build_rootfs(pg, cold_tar)
                assembled = time.monotonic() - began
                size_mb = cold_tar.stat().st_size / 1e6
                client.api.import_image(src=str(cold_tar), repository="bench/postgres", tag="cold",
                                        changes=postgres_image.image_changes(pg))
                cold = time.monotonic() - began
            finally:
                client.close()
        with DockerEngine() as engine:  # an empty engine, the cached root filesystem
            client = engine.client()
            try:
                postgres_image.ensure_image(client, pg)  # warms the cache if this machine never built it
            finally:
                client.close()
        with DockerEngine() as engine:
            client = engine.client()
            try:
                began = time.monotonic()
                tag, how = postgres_image.ensure_image(client, pg)
                cached = time.monotonic() - began
                assert how == "cached", how
            finally:
                client.close()
            os.environ.update(engine.environ())
            container_ready = []
            for _ in range(RUNS):
                began = time.monotonic()
                with PostgresContainerDatabase("bench"):
                    container_ready.append(time.monotonic() - began)
        local_ready = []
        for _ in range(RUNS):
            began = time.monotonic()
            with LocalPostgres("bench"):
                local_ready.append(time.monotonic() - began)
    print(f"PostgreSQL {pg.version}, image {tag} ({size_mb:.0f} MB)")
    print(f"engine start to answering:         {median(starts)}")
    print(f"image cold (assemble {assembled:.2f} s + import): {cold:.2f} s")
    print(f"image cached (import):             {cached:.2f} s   cold/cached {cold / cached:.1f}x")
    print(f"container Postgres start to ready: {median(container_ready)}")
    print(f"local Postgres start to ready:     {median(local_ready)}")
    print(f"container / local (medians):       {statistics.median(container_ready) / statistics.median(local_ready):.2f}x")


if __name__ == "__main__":
    main()
