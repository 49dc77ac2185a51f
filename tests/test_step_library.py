"""Golden tests of the step library: every step documents itself with a sentence that works.

`gameday steps` prints each definition's summary and example (the first and the last line
of the step function's docstring).  The example is checked here against the library
itself: it must be matched by its own definition and by no other definition of a kind it
could be used as, since an ambiguous sentence runs whichever step pytest-bdd finds first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gameday.features import StepDefinition, step_library

REPO = Path(__file__).resolve().parents[1]
KEYWORDS = ("Given", "When", "Then", "And", "But")
LIBRARY = step_library()


def _short(definition: StepDefinition) -> str:
    return f"{definition.module.rsplit('.', 1)[-1]}.{getattr(definition.func, '__name__', '?')}"


_COUNTS = Counter(_short(d) for d in LIBRARY)


def _id(definition: StepDefinition) -> str:
    """The function's name (with its module); a function registered as several kinds gets the kind too."""
    short = _short(definition)
    return f"{short}-{definition.kind}" if _COUNTS[short] > 1 else short


def _compatible(a: str, b: str) -> bool:
    return "*" in (a, b) or a == b


def _sentence(definition: StepDefinition) -> str:
    """The example without its Gherkin keyword, as pytest-bdd hands it to the parsers."""
    keyword, _, text = definition.example.partition(" ")
    assert keyword in KEYWORDS, f"{_id(definition)}: example {definition.example!r} does not start with a keyword"
    assert text.strip() == text and text, f"{_id(definition)}: example {definition.example!r} has no step text"
    return text


def test_the_library_is_found():
    assert len(LIBRARY) > 20
    assert {d.module.rsplit(".", 1)[-1] for d in LIBRARY} >= {"aws_steps", "database_steps", "kubernetes_steps",
                                                                "migration_steps"}
    assert len({_id(d) for d in LIBRARY}) == len(LIBRARY)


@pytest.mark.parametrize("definition", LIBRARY, ids=_id)
def test_step_is_documented(definition: StepDefinition):
    assert definition.summary, f"{_id(definition)} has no docstring summary"
    assert not definition.summary.startswith("Example:"), f"{_id(definition)}: the summary line is the example"
    assert definition.example, f"{_id(definition)}: the docstring has no 'Example: <Keyword> <step>' line"
    doc = (definition.func.__doc__ or "").strip().splitlines()
    assert doc[-1].strip().startswith("Example:"), f"{_id(definition)}: the example is not the docstring's last line"


@pytest.mark.parametrize("definition", LIBRARY, ids=_id)
def test_example_keyword_fits_the_kind(definition: StepDefinition):
    keyword = definition.example.split(" ", 1)[0]
    if keyword in ("Given", "When", "Then") and definition.kind != "*":
        assert keyword.lower() == definition.kind, (
            f"{_id(definition)} is a {definition.kind} step, its example says {definition.example!r}")


@pytest.mark.parametrize("definition", LIBRARY, ids=_id)
def test_example_matches_its_own_definition(definition: StepDefinition):
    text = _sentence(definition)
    assert definition.parser.is_matching(text), (
        f"{_id(definition)}: example {text!r} does not match its pattern {definition.pattern!r}")


@pytest.mark.parametrize("definition", LIBRARY, ids=_id)
def test_example_matches_no_other_definition(definition: StepDefinition):
    text = _sentence(definition)
    others = [o for o in LIBRARY
              if o is not definition and _compatible(o.kind, definition.kind) and o.parser.is_matching(text)]
    assert not others, (f"ambiguous: {_id(definition)} example {text!r} is also matched by "
                        + ", ".join(f"{_id(o)} ({o.kind} {o.pattern!r})" for o in others))


def test_gameday_steps_prints_every_example():
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")} | {"NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "steps"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    missing = [f"{_id(d)}: {d.example}" for d in LIBRARY if d.example not in done.stdout]
    assert not missing, "`gameday steps` does not print:\n" + "\n".join(missing)
