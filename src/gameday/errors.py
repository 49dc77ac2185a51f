"""Error hierarchy.

A *rehearsal failure* means the system under test misbehaved (the rollback did not
work, the backup did not restore): exit code 1.  A *harness error* means gameday
could not do its job (bad input, missing binary, unreachable target): exit code 2.
"""

from __future__ import annotations


class GameDayError(Exception):
    """Root of every error gameday raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        """The single line shown to a user: what went wrong, then how to fix it (a message that
        carries several lines, such as a tool's own output, is joined into one)."""
        message, fix = _joined(self.message), _joined(self.fix or "")
        return f"{message} ({fix})" if fix else message


def _joined(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


class ConfigError(GameDayError):
    """Bad input: a malformed feature, runbook, config, DSN or command-line value."""


class EnvironmentNotReady(GameDayError):
    """A provider could not start or did not become ready within its timeout."""


class HarnessPartDied(EnvironmentNotReady):
    """A part of the harness (etcd, the API server, a kubelet, Postgres, moto, locust) died while
    a step waited on it: the harness could not do its job, so the rehearsed system is not judged."""


class RehearsalFailed(GameDayError):
    """The rehearsed system failed a check: the rollback or restore did not hold."""

    exit_code = 1
