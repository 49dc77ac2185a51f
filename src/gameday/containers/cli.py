"""`gameday docker engine|image`: a Docker engine of gameday's own, and the PostgreSQL image built here."""

from __future__ import annotations

import os
import time

import click

from gameday.console import err_console as console
from gameday.console import one_line_errors, serve_in_foreground


@click.group("docker")
def docker() -> None:
    """A Docker engine of gameday's own (root, Debian's docker.io) and the PostgreSQL image built here."""


@docker.command("engine")
@one_line_errors
def engine_command() -> None:
    """Run a Docker engine of gameday's own in the foreground until Ctrl-C; prints DOCKER_HOST.

    Its socket, data and containers live in a folder of its own (never /var/run/docker.sock);
    the PostgreSQL image built here is loaded into it.  Ctrl-C removes every container, stops
    the engine and deletes the folder."""
    from gameday.containers.engine import DockerEngine
    from gameday.containers.postgres_image import ensure_image

    with DockerEngine() as engine:
        began = time.monotonic()
        client = engine.client()
        try:
            tag, how = ensure_image(client)
        finally:
            client.close()
        serve_in_foreground(engine.environ(), f"Docker engine ready in {engine.start_s:.2f} s; {tag} {how} in "
                            f"{time.monotonic() - began:.2f} s; Ctrl-C stops it and removes every container",
                            lambda: engine._proc is not None and engine._proc.poll() is None)
    console.print("stopped")


@docker.command("image")
@click.option("--rootfs-only", is_flag=True, help="build (or find cached) the root filesystem; no engine needed")
@one_line_errors
def image_command(rootfs_only: bool) -> None:
    """Build the PostgreSQL image from this machine's PostgreSQL into the engine DOCKER_HOST names."""
    from gameday.containers import postgres_image

    began = time.monotonic()
    pg = postgres_image.installed()
    if rootfs_only:
        tar = postgres_image.rootfs_tar(pg)
        how = "cached" if tar.exists() else "built"
        if how == "built":
            postgres_image.build_rootfs(pg, tar)
        click.echo(f"{tar} ({how}, {tar.stat().st_size / 1e6:.0f} MB, {time.monotonic() - began:.2f} s)")
        return
    from gameday.errors import EnvironmentNotReady
    from gameday.providers import docker_status

    status = docker_status()
    if not status:
        raise EnvironmentNotReady(status.detail, fix="start one: `gameday docker engine` (as root), then export "
                                                     "the DOCKER_HOST it prints")
    import docker as sdk

    client = sdk.from_env(timeout=120)
    try:
        tag, how = postgres_image.ensure_image(client, pg)
    finally:
        client.close()
    click.echo(f"{tag} ({how}, {time.monotonic() - began:.2f} s) in the engine at "
               f"{os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'}")
