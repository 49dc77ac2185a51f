"""What every `gameday` command shares: the consoles and the one-line error rule."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console

from gameday.errors import GameDayError

# soft_wrap: an error or a path is one line, whatever the terminal width
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

# The console people watch while a run's scenarios execute (pytest captures fd 1 meanwhile, so
# `gameday run` sets this to one on a duplicate of the real stdout; None outside a run).
live_console: Console | None = None


def print_error(exc: GameDayError) -> None:
    err_console.print(f"[red]error:[/red] {exc.one_line()}", highlight=False)


def one_line_errors(command: F) -> F:
    """A GameDayError becomes one line and its exit code, never a traceback (also when a
    command group runs on its own, e.g. `python -m gameday.cluster.cli`)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GameDayError as exc:
            print_error(exc)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def serve_in_foreground(environ: dict[str, str], said: str, running: Callable[[], bool]) -> None:
    """A harness part run from a shell: what a process needs to use it as ``export`` lines on stdout,
    one line saying what runs, then wait until it ends or Ctrl-C (the caller's ``with`` stops it)."""
    import time

    import click

    for key, value in environ.items():
        click.echo(f"export {key}={value}")
    err_console.print(said, highlight=False)
    try:
        while running():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
