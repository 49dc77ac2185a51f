"""The commands inside a runbook's shell: which programs it runs, on which lines.

Bash runs the text as written; this only finds the commands in it, for drift and for
deciding what a check needs: continuations are joined, comments and here-document
bodies skipped, and commands are found after ``if``/``then``/``&&``/``|``/``;`` and
inside ``$(...)``.  Never raises on odd shell (unbalanced quotes fall back to words).
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath

from gameday.durations import GO, go_seconds
from gameday.runbook.model import Command, Target

CLIS = ("kubectl", "aws", "psql", "pg_restore", "pg_dump", "alembic", "curl", "argocd", "helm", "terraform")
SHELL_WORDS = frozenset({"echo", "export", "source", ".", "sleep", "if", "for", "while", "set", "cd", "printf",
                         "jq", "grep", "read", "until", "case", "exit", "test", "[", "[[", "cat", "date",
                         "VERSION", "then", "else", "fi", "do", "done", "#!/bin/bash"})
_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time", "fi", "done",
                       "esac", "(", ")"})
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", ";;", "(", ")", "|&"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_TIMEOUT = re.compile(r"--(?:timeout|wait-timeout)[= ](" + GO + ")")


def cli_of(program: str) -> str | None:
    """The runbook-CLI family of a program word: kubectl, aws, ..., "script", or None."""
    name = PurePosixPath(program).name
    if name in CLIS:
        return name
    if name.endswith((".sh", ".bash")) or program.startswith(("./", "../", "~/")) \
            or re.search(r"(^|/)(scripts?|bin|hack|tools)/", program) and not program.startswith(("/usr/", "/bin/")):
        return "script"
    return None


def looks_like_command(text: str) -> bool:
    """Does this text start with a CLI a runbook uses (after VAR=value assignments)?"""
    words = _words(text.strip())
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    return bool(words) and cli_of(words[0]) is not None


def logical_lines(text: str, line_map: tuple[int, ...]) -> list[tuple[int, int, str]]:
    """(first line, last line, text) per logical line: continuations joined, here-doc bodies dropped."""
    out: list[tuple[int, int, str]] = []
    lines = text.split("\n")
    i = 0
    heredoc: str | None = None
    while i < len(lines):
        first = i
        line = lines[i]
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            i += 1
            continue
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        match = _HEREDOC.search(line)
        if match:
            heredoc = match.group(2)
        out.append((_at(line_map, first), _at(line_map, i), line))
        i += 1
    return out


def commands_in(text: str, line_map: tuple[int, ...]) -> tuple[Command, ...]:
    found: list[Command] = []
    for first, last, line in logical_lines(text, line_map):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        found.extend(_commands_of_line(stripped, first, last))
    return tuple(found)


def timeouts(commands: tuple[Command, ...]) -> list[Target]:
    """``--timeout=300s`` on a command: its own time target."""
    targets = []
    for command in commands:
        match = _TIMEOUT.search(command.text)
        if match:
            targets.append(Target(command.line, match.group(0), go_seconds(match.group(1)), "timeout"))
    return targets


def _commands_of_line(line: str, first: int, last: int) -> list[Command]:
    inner, outer = _substitutions(line)
    outer = re.sub(r"\b([A-Za-z_]\w*)=\([^)]*\)", r"\1=__ARRAY__", outer)  # NAME=(a b c) is data
    found: list[Command] = []
    for segment in _segments(_words(outer)):
        words = [w for w in segment if w not in _KEYWORDS]
        if words[:1] in (["for"], ["case"], ["select"], ["function"]):
            continue
        while words and _ASSIGNMENT.match(words[0]):
            words = words[1:]
        if not words or words[0] == "__SUBST__" or words[0].startswith(("}", "]")):
            continue
        program = words[0]
        found.append(Command(first, last, " ".join(segment) if len(segment) != len(_words(outer)) else outer.strip(),
                             program, cli_of(program)))
    for text in inner:
        found.extend(_commands_of_line(text, first, last))
    return found


def _substitutions(line: str) -> tuple[list[str], str]:
    """The ``$(...)`` bodies of a line, and the line with each replaced by a word."""
    inner: list[str] = []
    out = []
    i = 0
    while i < len(line):
        if line.startswith("$(", i) and not line.startswith("$((", i):
            depth, j = 1, i + 2
            while j < len(line) and depth:
                depth += {"(": 1, ")": -1}.get(line[j], 0)
                j += 1
            inner.append(line[i + 2:j - 1])
            out.append("__SUBST__")
            i = j
            continue
        out.append(line[i])
        i += 1
    return inner, "".join(out)


def _words(text: str) -> list[str]:
    text = text.replace(">&", ">__AMP__").replace("&>", "__AMP__>")
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return list(lexer)
    except ValueError:
        return text.split()


def _segments(words: list[str]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for word in words:
        if word in _SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(word)
    return [s for s in segments if s]


def _at(line_map: tuple[int, ...], index: int) -> int:
    if not line_map:
        return index + 1
    return line_map[min(index, len(line_map) - 1)]
