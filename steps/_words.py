"""Words the step library shares: durations as runbooks write them ("90 seconds", "5 minutes", "2 min"),
replica counts with their noun ("1 replica", "3 pods").

    @then(step('... within {timeout:Duration}'))   # timeout arrives in seconds
"""

from __future__ import annotations

import re
from typing import Any

from pytest_bdd import parsers

_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
          "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0, "m": 60.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


def duration(text: str) -> float:
    number, unit = _DURATION.fullmatch(text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


duration.pattern = r"\d+(?:\.\d+)?\s*(?:seconds|second|secs|sec|s|minutes|minute|mins|min|m)"  # type: ignore[attr-defined]


def replicas(text: str) -> int:
    return int(text.split()[0])


replicas.pattern = r"\d+\s+(?:replicas|replica|pods|pod)"  # type: ignore[attr-defined]


def name(text: str) -> str:
    return text


name.pattern = r'[^"]+'  # type: ignore[attr-defined]
_QUOTED = re.compile(r'"\{(?!command\})(\w+)\}"')  # a command line may hold quotes itself


def step(text: str) -> Any:
    """A parse-style step pattern that knows {name:Duration}; a quoted "{field}" never spans a quote,
    so 'release "{release}" is rolled out' cannot swallow 'release "x" of deployment "y" is rolled out'."""
    return parsers.parse(_QUOTED.sub(r'"{\1:Name}"', text), extra_types={"Duration": duration, "Name": name,
                                                                            "Replicas": replicas})
