"""A runbook as gameday reads it: sections, steps, commands and stated targets, each with its line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from gameday.errors import ConfigError


class RunbookError(ConfigError):
    """A runbook gameday cannot read: missing, not text, empty, or an unknown section."""


@dataclass(frozen=True, slots=True)
class Target:
    """A time the runbook promises: a section's ("Target Time: < 2 minutes"), a command's own
    (``--timeout=300s``), or a recovery expectation ("within 5 minutes")."""

    line: int
    text: str
    seconds: float
    kind: str  # section | timeout | within


@dataclass(frozen=True, slots=True)
class Command:
    line: int
    end_line: int
    text: str
    program: str
    cli: str | None  # kubectl, aws, psql, pg_restore, pg_dump, alembic, curl, argocd, helm, terraform, script


@dataclass(frozen=True, slots=True)
class Step:
    section: str
    path: tuple[str, ...]
    line: int
    end_line: int
    kind: str  # shell | sql | manual | other
    text: str
    line_map: tuple[int, ...]
    language: str | None
    commands: tuple[Command, ...]
    title: str
    checked: bool | None = None


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    level: int
    line: int
    end_line: int
    path: tuple[str, ...]
    steps: tuple[Step, ...]
    targets: tuple[Target, ...]


def clean_title(title: str) -> str:
    """A heading as people say it: no markdown, emoji, or leading numbering ("1.", "[ ] 6.")."""
    text = re.sub(r"[*_`]+", "", title)
    text = "".join(ch for ch in text if ch.isalnum() or ch.isspace() or ch in "-/&'(),.:+<>%?!")
    text = re.sub(r"^\s*(\[\s*[xX ]?\s*\]\s*)?(\d+[.)]\s*)?", "", text)
    return " ".join(text.split()).strip(" .:")


def _key(title: str) -> str:
    return clean_title(title).lower()


@dataclass(frozen=True)
class Runbook:
    path: Path
    title: str
    format: str  # markdown | text
    sections: tuple[Section, ...]
    last_updated: date | None = None
    last_updated_line: int | None = None

    def steps(self) -> Iterator[Step]:
        for section in self.sections:
            yield from section.steps

    def find_section(self, name: str) -> Section:
        wanted = _key(name)
        exact = [s for s in self.sections if _key(s.title) == wanted]
        if len(exact) == 1:
            return exact[0]
        partial = exact or [s for s in self.sections if wanted and wanted in _key(s.title)]
        if len(partial) == 1:
            return partial[0]
        known = "; ".join(dict.fromkeys(s.title for s in self.sections if s.level > 0))
        what = "is ambiguous" if partial else "is not a section"
        raise RunbookError(f"{name!r} {what} of runbook {self.path}",
                           fix=f"name one of: {known}" if known else "the runbook has no headings")

    def subtree(self, section: Section) -> tuple[Section, ...]:
        index = self.sections.index(section)
        found = [section]
        for other in self.sections[index + 1:]:
            if other.level <= section.level:
                break
            found.append(other)
        return tuple(found)

    def target_of(self, section: Section) -> Target | None:
        index = self.sections.index(section)
        level = section.level + 1
        for candidate in reversed(self.sections[:index + 1]):
            if candidate.level < level:
                level = candidate.level
                target = next((t for t in candidate.targets if t.kind == "section"), None)
                if target is not None:
                    return target
        return None
