"""Find and validate Gherkin features before anything starts.

A malformed feature or a step with no definition is bad input: it is reported as one
line naming the file and line, and nothing is provisioned.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
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
    """One feature file, parsed; an empty, malformed or scenario-less file is one line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"feature {path} is not UTF-8 text", fix="save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"feature {path} cannot be read: {exc.strerror or exc}", fix="check the path") from None
    if "\x00" in text:
        raise ConfigError(f"feature {path} is a binary file", fix="pass a Gherkin .feature text file")
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        raise ConfigError(f"feature {path} is empty", fix="write a Feature: with at least one Scenario: and its steps")
    try:
        feature = get_feature(str(path.parent), path.name)
    except GherkinParseError as exc:
        line = getattr(exc, "line", None)
        where = f"{path}:{line}" if line else str(path)
        said = [text.strip() for text in (getattr(exc, "message", None) or str(exc)).splitlines() if text.strip()]
        if len(said) > 1 and said[0].endswith(":"):  # "Unknown parsing error: Parser errors:" then the errors
            said = said[1:]
        raise ConfigError(f"malformed feature {where}: {'; '.join(said)}", fix="fix the Gherkin syntax") from None
    except Exception as exc:  # noqa: BLE001 - the parser's own failures on odd files are bad input too
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"malformed feature {path}: {type(exc).__name__}: {first}".rstrip(": "),
                          fix="start it with Feature: and give it a Scenario: with steps") from None
    if not feature.scenarios:
        raise ConfigError(f"feature {path} has no scenarios", fix="add a Scenario: with its steps, or remove the file")
    return feature


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
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure of the user's module is bad input
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
    module declares in its ``NAMES`` (e.g. ``{"release": "release"}``) with the value given.

    What a step's own words carry is checked here too: numbers are finite and not negative
    ("-5 orders"), a percent is at most 100, a step that reads a table or a text block has one, and a targets table
    (one its step reads with :func:`gameday.timeline.targets_from_table`) has a
    ``| phase | target |`` header, at least one row and positive durations."""
    files = feature_files(paths)
    features = [parse(f) for f in files]
    library = step_library(extra_step_modules)
    for path, feature in zip(files, features, strict=True):
        for scenario in feature.scenarios.values():
            for steps in _step_lists(path, scenario):
                for step in steps:
                    match = next((d for d in library if d.matches(step.type, step.name)), None)
                    where = f"{path}:{step.line_number}"
                    if match is None:
                        raise ConfigError(
                            f'{where}: no step definition matches "{step.keyword} {step.name}"',
                            fix="fix the wording (see `gameday steps`) or pass --steps MODULE with your own definitions",
                        )
                    arguments = match.parser.parse_arguments(step.name) or {}
                    _check_words(step, match, arguments, where)
                    if check is not None and match.names:
                        check([(match.names[k], str(v)) for k, v in arguments.items() if k in match.names], where)
    return features


def _step_lists(path: Path, scenario: Any) -> list[list[Any]]:
    """The steps a scenario runs: its own (with the Background's), or one list per example row of an outline."""
    where = f"{path}:{scenario.line_number}"
    if not scenario.templated:
        if not scenario.steps:
            raise ConfigError(f"{where}: scenario {scenario.name!r} has no steps",
                              fix="give it Given/When/Then steps, or remove it")
        return [list(scenario.steps)]
    rows = [row for examples in scenario.examples for row in examples.as_contexts()]
    if not rows:
        raise ConfigError(f"{where}: scenario outline {scenario.name!r} has no example rows",
                          fix="add rows under its Examples: header")
    if not scenario.steps:
        raise ConfigError(f"{where}: scenario outline {scenario.name!r} has no steps",
                          fix="give it Given/When/Then steps, or remove it")
    # Outline steps hold <placeholders>: every row is a scenario of its own, so every row is checked.
    return [list(scenario.render(row).steps) for row in rows]


def _check_words(step: Any, match: StepDefinition, arguments: dict[str, Any], where: str) -> None:
    said = f'"{step.keyword} {step.name}"'
    for name, value in arguments.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {name} {value} in {said} is not a number", fix="write a finite number")
        if value < 0:
            raise ConfigError(f"{where}: {name} {value:g} in {said} is negative",
                              fix=f"write a {name} of 0 or more")
        if name == "percent" and value > 100:
            raise ConfigError(f"{where}: percent {value:g} in {said} is more than all of it",
                              fix="write a percent from 0 to 100")
    parameters = _parameters(match.func)
    if "datatable" in parameters and step.datatable is None:
        raise ConfigError(f"{where}: {said} needs a table under it", fix=f"add its table (see `gameday steps`: {match.example or match.text})")
    if "docstring" in parameters and step.docstring is None:
        raise ConfigError(f'{where}: {said} needs a text block (""") under it', fix="add the text block")
    if step.datatable is not None and _reads_targets(match.func):
        _check_targets([[str(cell) for cell in row] for row in step.datatable.raw()], where)
    if step.datatable is not None and _reads(match.func, "rules_from_table"):
        from gameday.rehearsals.automatic import rules_from_table

        rules_from_table([[str(cell) for cell in row] for row in step.datatable.raw()], f"{where}: the rules table")
    if step.datatable is not None and _reads(match.func, "criteria_from_table"):
        from gameday.rehearsals.criteria import criteria_from_table

        criteria_from_table([[str(cell) for cell in row] for row in step.datatable.raw()],
                            f"{where}: the criteria table")
    if _reads(match.func, "action_from_text") and "action" in arguments:
        from gameday.rehearsals.automatic import action_from_text

        try:
            action_from_text(str(arguments["action"]))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}", fix=exc.fix) from None


def _parameters(func: Any) -> set[str]:
    try:
        return set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return set()


def _reads_targets(func: Any) -> bool:
    return _reads(func, "targets_from_table")


def _reads(func: Any, name: str) -> bool:
    """The step's function calls ``name`` (so its words or table can be checked with it beforehand)."""
    code = getattr(inspect.unwrap(func), "__code__", None)
    return code is not None and name in code.co_names


def _check_targets(rows: list[list[str]], where: str) -> None:
    """A ``| phase | target |`` table as the step will read it, refused now rather than after the rehearsal."""
    from gameday.timeline import PHASES, targets_from_table

    example = "e.g. | phase | target | then | act | 90 s |"
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header[:2] != ["phase", "target"]:
        raise ConfigError(f"{where}: the targets table must start with the header row | phase | target |",
                          fix=example)
    if len(rows) < 2:
        raise ConfigError(f"{where}: the targets table has only its header, so nothing would be checked",
                          fix=f"add a row per phase ({', '.join(PHASES)}), {example}")
    try:
        targets = targets_from_table(rows)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", fix=exc.fix) from None
    phases = [row[0].strip() for row in rows[1:]]
    twice = sorted({phase for phase in phases if phases.count(phase) > 1})
    if twice:
        raise ConfigError(f"{where}: the targets table gives phase {', '.join(twice)} more than once",
                          fix="keep one row per phase")
    for row in rows[1:]:
        phase = row[0].strip()
        if not (math.isfinite(targets[phase]) and targets[phase] > 0):
            raise ConfigError(f"{where}: target {row[1].strip()!r} for phase {phase!r} is not a positive duration",
                              fix="write seconds or minutes above 0, e.g. 90 s or 2 min")
