"""Find and validate Gherkin features before anything starts.

A malformed feature or a step with no definition is bad input: it is reported as one
line naming the file and line, and nothing is provisioned.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_bdd.exceptions import GherkinParseError
from pytest_bdd.feature import get_feature
from pytest_bdd.parser import Feature

from gameday.errors import ConfigError
from gameday.paths import shipped


@dataclass(frozen=True)
class StepDefinition:
    kind: str  # given / when / then / * (any)
    pattern: str
    module: str
    parser: Any

    def matches(self, kind: str, text: str) -> bool:
        return (self.kind in ("*", kind)) and self.parser.is_matching(text)


def feature_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into their *.feature files; the shipped features/ when none given."""
    chosen = [Path(p) for p in paths] or [shipped("features")]
    files: list[Path] = []
    for path in chosen:
        if path.is_dir():
            files += sorted(path.rglob("*.feature"))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"feature path {path} does not exist", fix="pass a .feature file or a folder of them")
    if not files:
        raise ConfigError(f"no .feature files under {', '.join(map(str, chosen))}", fix="add a feature or pass another path")
    return [f.resolve() for f in files]


def parse(path: Path) -> Feature:
    try:
        return get_feature(str(path.parent), path.name)
    except GherkinParseError as exc:
        line = getattr(exc, "line", None)
        where = f"{path}:{line}" if line else str(path)
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed feature {where}: {message}", fix="fix the Gherkin syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"feature {path} is not UTF-8 text", fix="save it as UTF-8") from None


def step_library(extra_modules: Iterable[str] = ()) -> list[StepDefinition]:
    """Every step definition of gameday.steps plus ``extra_modules``."""
    import gameday.steps as package

    names = [f"gameday.steps.{m.name}" for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    found: list[StepDefinition] = []
    for name in [*names, *extra_modules]:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not attr.startswith("pytestbdd_stepdef_"):
                continue
            context = _step_context(value)
            if context is not None:
                found.append(StepDefinition(kind=context.type or "*", pattern=context.parser.name,
                                            module=name, parser=context.parser))
    return found


def _step_context(fixture: Any) -> Any:
    """The StepFunctionContext behind a pytest-bdd step fixture (pytest-bdd 9 keeps a registry)."""
    unwrap = getattr(fixture, "_get_wrapped_function", None)
    marker = unwrap() if unwrap is not None else getattr(fixture, "__wrapped__", fixture)
    try:
        from pytest_bdd.steps import step_function_context_registry
    except ImportError:  # pytest-bdd 8 kept the context on the function
        return getattr(marker, "_pytest_bdd_step_context", None)
    return step_function_context_registry.get(marker)


def validate(paths: Iterable[str | Path], extra_step_modules: Iterable[str] = ()) -> list[Feature]:
    """Parse every feature and check that each step has a definition."""
    files = feature_files(paths)
    features = [parse(f) for f in files]
    library = step_library(extra_step_modules)
    for path, feature in zip(files, features, strict=True):
        for scenario in feature.scenarios.values():
            steps = list(scenario.steps)
            if scenario.templated:
                # Outline steps hold <placeholders>: check them with the first example row.
                example = _first_example(scenario)
                steps = list(scenario.render(example).steps) if example else []
            for step in steps:
                if not any(d.matches(step.type, step.name) for d in library):
                    raise ConfigError(
                        f'{path}:{step.line_number}: no step definition matches "{step.keyword} {step.name}"',
                        fix="fix the wording (see `gameday steps`) or pass --steps MODULE with your own definitions",
                    )
    return features


def _first_example(scenario: Any) -> dict[str, str] | None:
    for examples in scenario.examples:
        rows = list(examples.as_contexts())
        if rows:
            return rows[0]
    return None
