"""Words the step library shares: durations as runbooks write them ("90 seconds", "5 minutes", "2 min"),
replica counts with their noun ("1 replica", "3 pods").

    @then(step('... within {timeout:Duration}'))   # timeout arrives in seconds
"""

from __future__ import annotations

import re
from typing import Any

from pytest_bdd import parsers

from gameday.durations import PATTERN, seconds


def duration(text: str) -> float:
    return seconds(text)


duration.pattern = PATTERN  # type: ignore[attr-defined]


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
