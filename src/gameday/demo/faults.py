"""Fault modes of the demo service, parsed strictly from ``$DEMO_FAULT``.

``DEMO_FAULT`` is a comma-separated list, e.g. ``error-rate=0.5,latency-ms=400``.  The
faults any release can have (error-rate, latency-ms, crash-on-start, never-ready) are
gameday's own (:mod:`gameday.faults`, which the harness can also apply from outside to
any image); the demo adds one only its code can have, ``needs-column=table.column`` (a
release that reads a column a migration adds).  A bad value is refused before the
service binds its port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gameday.errors import ConfigError
from gameday.faults import parse_fault

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_WHERE = "DEMO_FAULT"


class FaultError(ValueError):
    """``$DEMO_FAULT`` names an unknown fault or gives a bad value."""


@dataclass
class Faults:
    error_rate: float = 0.0
    latency_ms: int = 0
    crash_on_start: bool = False
    never_ready: bool = False
    # (table, column) the release's code reads: a migration must have added it
    needs_column: tuple[str, str] | None = None
    names: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """The faults as given, for /version (lets a journal show what each version was)."""
        return list(self.names)


def _needs_column(value: str | None) -> tuple[str, str]:
    table, _, column = (value or "").partition(".")
    if not (_IDENTIFIER.match(table) and _IDENTIFIER.match(column)):
        raise FaultError(f"needs-column needs table.column in lower case, e.g. needs-column=orders.discount_cents (got {value!r})")
    return table, column


def parse_faults(text: str) -> Faults:
    """``"error-rate=0.5, latency-ms=400"`` -> Faults; raises FaultError naming the bad part."""
    faults = Faults()
    common = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if name.strip() == "needs-column":
            if faults.needs_column is not None:
                raise FaultError("fault 'needs-column' given twice")
            faults.needs_column = _needs_column(value.strip() if sep else None)
        else:
            common.append(part)
        faults.names.append(part)
    try:
        spec = parse_fault(",".join(common), _WHERE)
    except ConfigError as exc:
        raise FaultError(exc.message.removeprefix(f"{_WHERE} fault: ")) from None
    faults.error_rate, faults.latency_ms = spec.error_rate, spec.latency_ms
    faults.crash_on_start, faults.never_ready = spec.crash_on_start, spec.never_ready
    return faults
