"""Find and validate Gherkin features before anything starts.

A malformed feature or a step with no definition is bad input: it is reported as one
line naming the file and line, and nothing is provisioned.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
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
    func: Any = None
    names: dict[str, str] | None = None  # argument -> what it names (the module's NAMES), for preflight

    @property
    def text(self) -> str:
        """The pattern as a feature author reads it (internal type names dropped)."""
        return self.pattern.replace(":Name}", "}")

    @property
    def parameters(self) -> list[str]:
        """The step's named parameters (parse fields or regex groups)."""
        inner = getattr(self.parser, "parser", None)
        if inner is not None and hasattr(inner, "named_fields"):
            return list(inner.named_fields)
        regex = getattr(self.parser, "regex", None)
        return list(regex.groupindex) if regex is not None else []

    @property
    def example(self) -> str:
        doc = (getattr(self.func, "__doc__", None) or "").strip()
        return next((line.split("Example:", 1)[1].strip() for line in doc.splitlines() if "Example:" in line), "")

    @property
    def summary(self) -> str:
        doc = (getattr(self.func, "__doc__", None) or "").strip()
        return doc.splitlines()[0].strip() if doc else ""

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


def load_module(spec: str) -> Any:
    """A step module by importable name, or by path to a .py file (a team's own steps)."""
    try:
        if spec.endswith(".py"):
            path = Path(spec).resolve()
            name = f"gameday_user_steps_{path.stem}_{abs(hash(str(path))) % 10**8}"
            if name in sys.modules:
                return sys.modules[name]
            found = importlib.util.spec_from_file_location(name, path)
            if found is None or found.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(found)
            sys.modules[name] = module
            found.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except FileNotFoundError:
        raise ConfigError(f"step module {spec} does not exist", fix="fix the path or module name") from None
    except Exception as exc:  # noqa: BLE001 - any import failure of the user's module is bad input
        line = getattr(exc, "lineno", None)
        where = f"{spec}:{line}" if isinstance(exc, SyntaxError) and line else spec
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"step module {where} does not import: {type(exc).__name__}: {first}",
                          fix="fix the module so `python -c 'import ...'` works") from None


def step_library(extra_modules: Iterable[str] = ()) -> list[StepDefinition]:
    """Every step definition of gameday.steps plus ``extra_modules`` (names or .py paths)."""
    import gameday.steps as package

    names = [f"gameday.steps.{m.name}" for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    found: list[StepDefinition] = []
    for name in [*names, *extra_modules]:
        module = load_module(name)
        for attr, value in vars(module).items():
            if not attr.startswith("pytestbdd_stepdef_"):
                continue
            context = _step_context(value)
            if context is not None:
                found.append(StepDefinition(kind=context.type or "*", pattern=context.parser.name,
                                            module=name, parser=context.parser, func=context.step_func,
                                            names=getattr(module, "NAMES", None)))
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


def validate(paths: Iterable[str | Path], extra_step_modules: Iterable[str] = (),
             check: Any = None) -> list[Feature]:
    """Parse every feature and check that each step has a definition; ``check(named, where)`` then
    vets what a step names, before anything starts: ``named`` pairs each argument the step
    module declares in its ``NAMES`` (e.g. ``{"release": "release"}``) with the value given."""
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
                match = next((d for d in library if d.matches(step.type, step.name)), None)
                if match is None:
                    raise ConfigError(
                        f'{path}:{step.line_number}: no step definition matches "{step.keyword} {step.name}"',
                        fix="fix the wording (see `gameday steps`) or pass --steps MODULE with your own definitions",
                    )
                if check is not None and match.names:
                    arguments = match.parser.parse_arguments(step.name) or {}
                    check([(match.names[k], str(v)) for k, v in arguments.items() if k in match.names],
                          f"{path}:{step.line_number}")
    return features


def _first_example(scenario: Any) -> dict[str, str] | None:
    for examples in scenario.examples:
        rows = list(examples.as_contexts())
        if rows:
            return rows[0]
    return None
