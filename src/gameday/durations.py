"""Durations as runbooks and features write them: "90 s", "2 min", "1.5 seconds" -> seconds.

One reader for every table and step that takes a duration (step parameters, the rollback targets
table, the automatic-rollback rules), so each accepts the same words::

    seconds("2 min")                 # 120.0
    seconds("90", bare=True)         # 90.0: a number alone is seconds where a table allows it
    seconds("soon")                  # ValueError("not a duration")
"""

from __future__ import annotations

import math
import re

UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
         "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0}
# for parse-style step patterns: {timeout:Duration}
PATTERN = r"\d+(?:\.\d+)?\s*(?:seconds|second|secs|sec|s|minutes|minute|mins|min|m)"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
# a runbook's prose also says "within 500 ms" and "within 2 hours"
PROSE_UNITS = {**UNITS, "ms": 0.001, "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0}
PROSE = r"(\d+(?:\.\d+)?)\s*\+?\s*(" + "|".join(sorted(PROSE_UNITS, key=len, reverse=True)) + r")\b"
# a command's own flag, as Go (kubectl) writes it: "90s", "2m", "1m30s", "500ms", or a bare number of seconds
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_UNIT = "|".join(sorted(_GO_UNITS, key=len, reverse=True))  # "ms" before "m" and "s"
GO = rf"(?:\d+(?:\.\d+)?(?:{_GO_UNIT}))+(?![\w.])|\d+(?:\.\d+)?(?![\w.])"
_GO_PART = re.compile(rf"(\d+(?:\.\d+)?)({_GO_UNIT})?")


def seconds(text: str, *, bare: bool = False, positive: bool = False) -> float:
    """``text`` in seconds.  ``bare``: a number without a unit is seconds; ``positive``: 0 is refused.
    ValueError says what is wrong ("not a duration", "must be more than 0")."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or (not match.group(2) and not bare) or (match.group(2) and match.group(2) not in UNITS):
        raise ValueError("not a duration")
    value = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if not math.isfinite(value):
        raise ValueError("not a duration")
    if positive and value <= 0:
        raise ValueError("must be more than 0")
    return value


def prose_seconds(number: str, unit: str) -> float:
    """A number and its unit as a runbook's prose says them (a match of ``PROSE``) in seconds."""
    return float(number) * PROSE_UNITS[unit.lower()]


def go_seconds(text: str) -> float:
    """A duration as Go flags take it ("1m30s", "500ms"; a bare number is seconds) in seconds."""
    if re.fullmatch(GO, text) is None:
        raise ValueError("not a duration")
    return sum(float(number) * _GO_UNITS[unit or "s"] for number, unit in _GO_PART.findall(text))
