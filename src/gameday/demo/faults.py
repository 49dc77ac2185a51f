"""Fault modes of the demo service, parsed strictly from ``$DEMO_FAULT``.

``DEMO_FAULT`` is a comma-separated list, e.g. ``error-rate=0.5,latency-ms=400``.  Each
fault is one entry in a registry (name -> parser), so adding a way for a release to go
bad is one function, and a bad value is refused before the service binds its port.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


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


def _flag(name: str, attribute: str) -> Callable[[Faults, str | None], None]:
    def parse(faults: Faults, value: str | None) -> None:
        if value is not None:
            raise FaultError(f"{name} takes no value (use '{name}', not '{name}={value}')")
        setattr(faults, attribute, True)

    return parse


def _error_rate(faults: Faults, value: str | None) -> None:
    rate = _number("error-rate", value, "a fraction between 0 and 1, e.g. error-rate=0.5")
    if not 0.0 <= rate <= 1.0:
        raise FaultError(f"error-rate={value} is outside 0..1 (give a fraction, e.g. error-rate=0.5)")
    faults.error_rate = rate


def _latency_ms(faults: Faults, value: str | None) -> None:
    hint = "whole milliseconds from 0 to 60000, e.g. latency-ms=400"
    if value is None or not value.isdigit():
        raise FaultError(f"latency-ms needs {hint} (got {value!r})")
    latency = int(value)
    if latency > 60_000:
        raise FaultError(f"latency-ms={value} is too large (give {hint})")
    faults.latency_ms = latency


def _needs_column(faults: Faults, value: str | None) -> None:
    table, _, column = (value or "").partition(".")
    if not (_IDENTIFIER.match(table) and _IDENTIFIER.match(column)):
        raise FaultError(f"needs-column needs table.column in lower case, e.g. needs-column=orders.discount_cents (got {value!r})")
    faults.needs_column = (table, column)


def _number(name: str, value: str | None, hint: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FaultError(f"{name} needs {hint} (got {value!r})") from None


FAULTS: dict[str, Callable[[Faults, str | None], None]] = {
    "error-rate": _error_rate,
    "latency-ms": _latency_ms,
    "crash-on-start": _flag("crash-on-start", "crash_on_start"),
    "never-ready": _flag("never-ready", "never_ready"),
    "needs-column": _needs_column,
}


def parse_faults(text: str) -> Faults:
    """``"error-rate=0.5, latency-ms=400"`` -> Faults; raises FaultError naming the bad part."""
    faults = Faults()
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in FAULTS:
            raise FaultError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        if name in (n.partition("=")[0] for n in faults.names):
            raise FaultError(f"fault {name!r} given twice")
        FAULTS[name](faults, value.strip() if sep else None)
        faults.names.append(part)
    return faults
