"""Placeholders in a runbook, and what fills them: never a guess.

A runbook names things the rehearsal must supply: ``<revision-number>``, ``<service-name>``,
``$AWS_CLUSTER``, ``$PREV_TASK``.  Values come from, strongest first:

1. ``--set name=value`` and a bindings file (``--bindings``): the two must agree;
2. the project file's ``runbook:`` block and its service (``service-name``, ``deployment``,
   ``namespace``, ``container``);
3. the rehearsal environment: ``.rollback_state`` keys when the runbook sources it
   (``AWS_CLUSTER``, ``PREV_TASK``, ...), and ``@facts`` a binding may name
   (``revision-number: "@previous-revision"``).

A placeholder nothing binds is reported with its line and its step is not run.

Bindings file::

    set: {revision-number: "@previous-revision", AWS_CLUSTER: shop-staging}
    namespaces: {production: shop}          # the team's namespace -> the rehearsal's
    contexts: [prod-eu-1]                   # kube contexts that mean "the rehearsal cluster"
    hosts: {api.shop.example: checkout-api} # host -> a project service (or a URL)
    ecs: {cluster: shop-staging, services: [checkout-api]}
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gameday.errors import ConfigError
from gameday.project import Project, RunbookModel

ANGLE = re.compile(r"<([A-Za-z][A-Za-z0-9_.-]*)>")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:[:#%/^,][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")
ASSIGNED = re.compile(r"(?:^|[\s;&|(`]|\bexport\s+|\blocal\s+|\breadonly\s+|\bdeclare\s+(?:-\w+\s+)*)"
                      r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\+?=")
LOOP_VAR = re.compile(r"\b(?:for|select)\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b|\bread\s+(?:-\w+\s+)*([A-Za-z_][\w ]*)")
# set by the shell or the login: never a placeholder
SHELL_VARIABLES = frozenset(
    ["HOME", "USER", "LOGNAME", "PATH", "PWD", "OLDPWD", "SHELL", "TERM", "LANG", "HOSTNAME", "RANDOM", "SECONDS", "LINENO", "BASH", "BASHPID", "BASH_SOURCE", "BASH_VERSION", "FUNCNAME", "PIPESTATUS", "PPID", "UID", "EUID", "GROUPS", "IFS", "OPTARG", "OPTIND", "REPLY", "TMPDIR", "SHLVL", "HOSTTYPE", "OSTYPE", "MACHTYPE", "EPOCHSECONDS", "EPOCHREALTIME"])


@dataclass
class Bindings:
    """Everything a check binds, with where each value came from."""

    values: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)
    contexts: list[str] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)
    ecs: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: str, origin: str, *, explicit: bool = False) -> None:
        if name in self.values and explicit and self.origin[name].startswith("explicit") \
                and self.values[name] != value:
            raise ConfigError(f"placeholder {name} is bound twice differently: {self.values[name]!r} "
                              f"({self.origin[name][9:]}) and {value!r} ({origin})",
                              fix="give it one value")
        if name in self.values and not explicit and self.origin[name].startswith("explicit"):
            return  # --set and the bindings file win over the project and the environment
        self.values[name] = value
        self.origin[name] = f"explicit {origin}" if explicit else origin

    def merge_file(self, path: Path) -> None:
        self._merge(load_bindings_file(path), f"bindings file {path.name}", explicit=True)

    def merge_project(self, project: Project) -> None:
        """The project file's ``runbook:`` block, and the default service's names."""
        self._merge(project.model.runbook, f"project file {project.path.name}", explicit=False)
        try:
            service = project.service()
        except ConfigError:
            return  # several services and no default: nothing to say for "the" service
        for name, value in (("service-name", service.name), ("service", service.name),
                            ("deployment", service.deployment), ("namespace", service.namespace),
                            ("container", service.container)):
            if value:
                self.add(name, value, f"project file {project.path.name}")

    def _merge(self, model: RunbookModel, origin: str, *, explicit: bool) -> None:
        for name, value in model.set.items():
            self.add(name, str(value), origin, explicit=explicit)
        self.namespaces.update(model.namespaces)
        self.contexts.extend(c for c in model.contexts if c not in self.contexts)
        self.hosts.update(model.hosts)
        self.ecs.update(model.ecs)

    def merge_sets(self, pairs: Iterable[str]) -> None:
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"--set {pair!r} is not name=value", fix="write e.g. --set revision-number=3")
            self.add(name.strip().strip("<>$"), value, "--set", explicit=True)


def load_bindings_file(path: Path) -> RunbookModel:
    if not path.is_file():
        raise ConfigError(f"bindings file {path} does not exist", fix="give the path of a YAML bindings file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"bindings file {path}{line} is not valid YAML",
                          fix="fix the YAML (see `gameday runbook check --help`)") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"bindings file {path} must be a mapping (set:, namespaces:, contexts:, hosts:, ecs:)",
                          fix="see `gameday runbook check --help`")
    _reject_duplicates(path)
    try:
        return RunbookModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"bindings file {path}: {where}: {first['msg']}",
                          fix="keys are set, namespaces, contexts, hosts and ecs") from None


def _reject_duplicates(path: Path) -> None:
    """A key given twice in one mapping of the bindings file is two bindings for one name."""

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
            value = loader.construct_object(value_node)  # type: ignore[no-untyped-call]
            if key in seen and seen[key] != value:
                raise ConfigError(f"bindings file {path} line {key_node.start_mark.line + 1}: {key} is bound twice "
                                  f"differently ({seen[key]!r} and {value!r})", fix="give it one value")
            seen[key] = value
        return seen

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)  # type: ignore[arg-type]
    yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class Placeholder:
    name: str
    form: str  # "<name>" or "$NAME"
    line: int


def placeholders(text: str, line_map: tuple[int, ...], assigned: set[str]) -> list[Placeholder]:
    """The ``<name>`` and unassigned ``$NAME`` placeholders of a shell step, with their lines."""
    found: list[Placeholder] = []
    for index, line_text in enumerate(text.split("\n")):
        line = line_map[min(index, len(line_map) - 1)] if line_map else 0
        code = _strip_comment(line_text)
        for match in ANGLE.finditer(code):
            if not _heredoc_marker(code, match.start()):
                found.append(Placeholder(match.group(1), match.group(0), line))
        for match in VARIABLE.finditer(_outside_single_quotes(code)):
            name = match.group(1) or match.group(2)
            if name in SHELL_VARIABLES or name in assigned or name.startswith("GAMEDAY_"):
                continue
            found.append(Placeholder(name, f"${name}", line))
    return found


def assigned_names(texts: Iterable[str]) -> set[str]:
    """Variables a runbook sets itself (``NS=...``, ``export X=``, ``for i in``, ``read X``)."""
    names: set[str] = set()
    for text in texts:
        for line in text.split("\n"):
            code = _strip_comment(line)
            names.update(m.group(1) for m in ASSIGNED.finditer(code))
            for match in LOOP_VAR.finditer(code):
                names.update((match.group(1) or match.group(2) or "").split())
    return names


def fill(text: str, values: Mapping[str, str]) -> str:
    """``<name>`` replaced by its value (shell-quoted when it needs quoting)."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            return match.group(0)
        return value if re.fullmatch(r"[\w@%+=:,./-]+", value) else shlex.quote(value)

    return ANGLE.sub(one, text)


def _strip_comment(line: str) -> str:
    stripped = line.lstrip()
    return "" if stripped.startswith("#") else line


def _heredoc_marker(code: str, start: int) -> bool:
    return code[max(0, start - 1):start] == "<"


def _outside_single_quotes(code: str) -> str:
    return re.sub(r"'[^']*'", "''", code)
