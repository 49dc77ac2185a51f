"""Read a runbook: markdown through markdown-it-py, plain-text checklists line by line.

    book = parse_runbook(Path("docs/rollback.md"))
    [s.title for s in book.sections]           # ['Roll back', 'Check that it worked', ...]
    [(st.line, st.kind) for st in book.steps()]

Markdown: headings are sections; fenced blocks are steps (bash/sh/shell/console run, sql
runs on the rehearsal database, other languages are listed); an unlabelled block is
shell when its lines are commands, else instructions for a person; list and checklist
items are manual steps unless they hold a command; a numbered item's bold title names
the block under it.  Stated targets are tied to the section they are written in.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from gameday.durations import PROSE, prose_seconds
from gameday.runbook.model import Command, Runbook, RunbookError, Section, Step, Target, clean_title
from gameday.runbook.shell import SHELL_WORDS, cli_of, commands_in, looks_like_command, timeouts

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "zsh", "console", "shell-session", "sh-session"})
SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst", ".text", ""})
_SECTION_TARGET = re.compile(r"\btarget(?:\s+time)?\s*:?\s*[<≤]?\s*=?\s*" + PROSE, re.IGNORECASE)
_WITHIN = re.compile(r"\bwithin\s+" + PROSE, re.IGNORECASE)
_LAST_UPDATED = re.compile(r"last[ -]updated\W{0,6}\s*([0-9]{4}-[0-9]{2}-[0-9]{2}|[A-Z][a-z]+ \d{1,2}, \d{4})",
                           re.IGNORECASE)


def stated_targets(text: str, line: int) -> list[Target]:
    """'Target Time: < 2 minutes' (the section's) and 'within 5 minutes' (a recovery expectation)."""
    plain = re.sub(r"[*_`]+", "", text)
    found = []
    for match in _SECTION_TARGET.finditer(plain):
        found.append(Target(line, match.group(0).strip(), prose_seconds(match.group(1), match.group(2)), "section"))
    for match in _WITHIN.finditer(plain):
        found.append(Target(line, match.group(0).strip(), prose_seconds(match.group(1), match.group(2)), "within"))
    return found


def parse_runbook(path: Path) -> Runbook:
    text = _read(path)
    book = _parse_text(path, text) if path.suffix.lower() in (".txt", ".text") or not _is_markdown(text) \
        else _Markdown(path, text).parse()
    if not any(True for _ in book.steps()):
        raise RunbookError(f"runbook {path} has no steps (no commands, code blocks or checklist items)",
                           fix="give a markdown or plain-text runbook with its procedure in it")
    return book


def _read(path: Path) -> str:
    if not path.exists():
        raise RunbookError(f"runbook {path} does not exist", fix="give the path of a markdown or text runbook")
    if path.is_dir():
        raise RunbookError(f"runbook {path} is a folder", fix="give the path of one runbook file in it")
    if path.suffix.lower() not in SUFFIXES:
        raise RunbookError(f"runbook {path} is not markdown or text ({path.suffix})",
                           fix="give a .md or .txt runbook")
    data = path.read_bytes()
    if b"\0" in data:
        raise RunbookError(f"runbook {path} is a binary file", fix="give a markdown or text runbook")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RunbookError(f"runbook {path} is not UTF-8 text (byte {exc.start})",
                           fix="save it as UTF-8") from None
    if not text.strip():
        raise RunbookError(f"runbook {path} is empty", fix="give a runbook with its procedure in it")
    return text


def _is_markdown(text: str) -> bool:
    return bool(re.search(r"^(#{1,6} |```|~~~)", text, re.MULTILINE))


def _last_updated(lines: list[str]) -> tuple[date | None, int | None]:
    for number, line in enumerate(lines, 1):
        match = _LAST_UPDATED.search(line)
        if match:
            raw = match.group(1)
            for fmt in ("%Y-%m-%d", "%B %d, %Y", "%b %d, %Y"):
                try:
                    return datetime.strptime(raw, fmt).date(), number
                except ValueError:
                    continue
    return None, None


class _Builder:
    """Sections as they are opened, each collecting its steps and targets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.open: list[dict[str, Any]] = [{"title": path.stem, "level": 0, "line": 1, "steps": [], "targets": []}]
        self.done: list[dict[str, Any]] = []

    def heading(self, title: str, level: int, line: int) -> None:
        self.done.append(self.open.pop())
        section: dict[str, Any] = {"title": clean_title(title) or title.strip(), "level": level, "line": line,
                                   "steps": [], "targets": []}
        section["path"] = self.path_of(section)
        self.open.append(section)

    @property
    def current(self) -> dict[str, Any]:
        return self.open[-1]

    def path_of(self, current: dict[str, Any]) -> tuple[str, ...]:
        if "path" in current:
            return tuple(current["path"])
        chain = []
        level = current["level"] + 1
        for section in reversed([*self.done, current]):
            if 0 < section["level"] < level:
                chain.append(section["title"])
                level = section["level"]
        return tuple(reversed(chain))

    def step(self, kind: str, text: str, line_map: tuple[int, ...], *, title: str, language: str | None = None,
             commands: tuple[Command, ...] = (), checked: bool | None = None) -> None:
        current = self.current
        line_map = line_map or (1,)
        current["steps"].append(Step(current["title"], self.path_of(current), line_map[0], line_map[-1], kind, text,
                                     line_map, language, commands, title.strip()[:120], checked))
        current["targets"].extend(timeouts(commands))

    def target(self, targets: list[Target]) -> None:
        self.current["targets"].extend(targets)

    def finish(self, title: str, fmt: str, lines: list[str]) -> Runbook:
        all_sections = [*self.done, *self.open]
        sections = []
        for index, raw in enumerate(all_sections):
            later = [s for s in all_sections[index + 1:] if s["level"] <= raw["level"]]
            end = later[0]["line"] - 1 if later else len(lines)
            if raw["level"] == 0 and not raw["steps"] and not raw["targets"]:
                continue
            sections.append(Section(raw["title"], raw["level"], raw["line"], end, self.path_of(raw),
                                    tuple(raw["steps"]), tuple(raw["targets"])))
        updated, updated_line = _last_updated(lines)
        return Runbook(self.path, title, fmt, tuple(sections), updated, updated_line)


class _Markdown:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.tokens = MarkdownIt("commonmark").enable("table").enable("strikethrough").parse(text)
        self.build = _Builder(path)
        self.title = ""
        self.items: list[dict[str, Any]] = []  # open list items: their first text, whether a block used it

    def parse(self) -> Runbook:
        tokens = self.tokens
        i = 0
        in_table = 0
        while i < len(tokens):
            token = tokens[i]
            if token.type == "heading_open":
                title = tokens[i + 1].content
                level = int(token.tag[1])
                if level == 1 and not self.title:
                    self.title = clean_title(title)
                self.build.heading(title, level, token.map[0] + 1 if token.map else 1)
                self.build.target(stated_targets(title, token.map[0] + 1 if token.map else 1))
                i += 3
                continue
            if token.type == "table_open":
                in_table += 1
            elif token.type == "table_close":
                in_table -= 1
            elif token.type == "list_item_open":
                self.items.append({"text": None, "line": (token.map[0] + 1) if token.map else 1, "used": False})
            elif token.type == "list_item_close":
                self._close_item(self.items.pop())
            elif token.type in ("fence", "code_block"):
                self._block(token)
            elif token.type == "inline" and not in_table:
                self._inline(token)
            i += 1
        return self.build.finish(self.title or self.path.stem, "markdown", self.lines)

    def _inline(self, token: Any) -> None:
        line = token.map[0] + 1 if token.map else 1
        self.build.target(stated_targets(token.content, line))
        if self.items and self.items[-1]["text"] is None:
            self.items[-1].update(text=token.content, line=line)
            return
        self._inline_commands(token, line)

    def _inline_commands(self, token: Any, line: int) -> bool:
        """Code spans holding a runbook command become shell steps; True when there was one."""
        found = False
        for child in token.children or []:
            if child.type == "code_inline" and looks_like_command(child.content):
                text = child.content.strip()
                self.build.step("shell", text, (line,), title=text, commands=commands_in(text, (line,)))
                found = True
        return found

    def _close_item(self, item: dict[str, Any]) -> None:
        if item["used"] or item["text"] is None:
            return
        raw = item["text"]
        checked = None
        match = re.match(r"^\[([ xX])\]\s+", raw)
        if match:
            checked = match.group(1).lower() == "x"
            raw = raw[match.end():]
        line = item["line"]
        plain = re.sub(r"[*_]+", "", raw).strip()
        first_line = plain.split("\n", 1)[0]
        if looks_like_command(first_line):
            self.build.step("shell", first_line, (line,), title=first_line,
                            commands=commands_in(first_line, (line,)), checked=checked)
            return
        spans = [m.group(1) for m in re.finditer(r"`([^`]+)`", raw) if looks_like_command(m.group(1))]
        for span in spans:
            self.build.step("shell", span.strip(), (line,), title=span.strip(),
                            commands=commands_in(span, (line,)), checked=checked)
        if not spans:
            self.build.step("manual", plain, (line,), title=plain.split("\n")[0], checked=checked)

    def _block(self, token: Any) -> None:
        start = token.map[0] + 1 if token.map else 1
        fenced = token.type == "fence"
        language = (token.info.strip().split() or [None])[0] if fenced else None
        language = language.lower() if language else None
        content = token.content.rstrip("\n")
        first = start + 1 if fenced else start
        line_map = tuple(range(first, first + content.count("\n") + 1))
        title = ""
        if self.items:
            item = self.items[-1]
            title = re.sub(r"[*_`]+", "", item["text"] or "").strip().rstrip(":")
            item["used"] = True
        if language == "console":
            kept = [(n, re.sub(r"^[$#]\s?", "", ln)) for n, ln in zip(line_map, content.split("\n"), strict=False)
                    if re.match(r"^[$#] ", ln)]
            content = "\n".join(text for _, text in kept)
            line_map = tuple(n for n, _ in kept) or line_map[:1]
            language = "console"
        kind = self._kind(language, content)
        commands = commands_in(content, line_map) if kind == "shell" else ()
        if not title:
            title = next((c.text for c in commands), content.strip().split("\n")[0])
        self.build.step(kind, content if kind != "manual" else content.strip(), line_map, title=title,
                        language=language, commands=commands)

    @staticmethod
    def _kind(language: str | None, content: str) -> str:
        if language in SHELL_LANGUAGES:
            return "shell"
        if language in ("sql", "psql", "postgresql", "pgsql"):
            return "sql"
        if language not in (None, "", "text", "txt", "plain"):
            return "other"
        lines = [ln.strip() for ln in content.split("\n") if ln.strip() and not ln.strip().startswith("#")]
        if not lines:
            return "manual"
        shell = sum(looks_like_command(ln) or ln.split()[0] in SHELL_WORDS for ln in lines)
        return "shell" if shell * 2 >= len(lines) else "manual"


# -- plain-text checklists --------------------------------------------------------------------
_ITEM = re.compile(r"^\[\s*[xX ]?\s*\]\s*(\d+[.)]\s*)?(.+)$")
_META = re.compile(r"^[A-Z][A-Za-z ]{1,30}:\s*\S")
_NEXT_ITEM = re.compile(r"\s-\s+(?=[A-Z])")


def _parse_text(path: Path, text: str) -> Runbook:
    lines = text.splitlines()
    build = _Builder(path)
    title = ""
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if not title:
            title = line
            continue
        build.target(stated_targets(line, number))
        item = _ITEM.match(line)
        if item:
            build.heading(item.group(2), 2, number)
        elif line.startswith(("- ", "* ", "• ")):
            body = line[2:].strip()
            if looks_like_command(body):
                _text_command(build, body, number)
            else:
                build.step("manual", body, (number,), title=body)
        elif looks_like_command(line) or re.match(r"^(source|\.) \S", line):
            command, _, rest = _split_next(line)
            _text_command(build, command, number)
            if rest:
                build.step("manual", rest, (number,), title=rest)
        elif _NEXT_ITEM.search(line) and not _META.match(line):
            rest = line[_NEXT_ITEM.search(line).end():].strip()  # type: ignore[union-attr]
            build.step("manual", rest, (number,), title=rest)  # "/health,/ready - Compare ..."
        elif _META.match(line) or len(line) > 60 or line.endswith((".", ":")):
            continue  # metadata (Issue:, Status:) or prose
        elif re.match(r"^[A-Z][\w-]*(\s+[\w()/-]+){0,6}$", line):
            build.heading(line, 1, number)
    return build.finish(title or path.stem, "text", lines)


def _split_next(line: str) -> tuple[str, str, str]:
    """A flattened checklist line: the command, then " - Next item" (a new manual step)."""
    match = _NEXT_ITEM.search(line)
    command, rest = (line[:match.start()], line[match.end():]) if match else (line, "")
    command = command.replace("\\ ", " ")
    glued = re.search(r"(?<=\w)\((?=[a-z]+ [a-z])", command)  # "backup(with different deployment ID)"
    if glued:
        command = command[:glued.start()]
    return " ".join(command.split()), "", rest.strip()


def _text_command(build: _Builder, text: str, line: int) -> None:
    command, _, rest = _split_next(text)
    build.step("shell", command, (line,), title=command, commands=commands_in(command, (line,)))
    if rest:
        build.step("manual", rest, (line,), title=rest)


__all__ = ["cli_of", "parse_runbook", "stated_targets"]
